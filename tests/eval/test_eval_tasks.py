"""The task registry, templates, kinds, and the world adapters (parser + metric per world kind)."""
import pytest

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.eval import Task, get_task, list_tasks, register_task
from mmtune.eval.tasks.kinds import TASK_KINDS
from mmtune.world.tasks import WORLD_TASKS


def _sample(**meta) -> Sample:
    return Sample("x", [user_turn("Q?"), assistant_turn("A")], meta=meta)


def test_templates_wrap_the_last_user_text_and_fingerprint():
    task = Task("t", [_sample(answer="a")], score=lambda p, s: 1.0, metric="m", chance=0.0, seen=True,
                templates=("{prompt}", "Question: {prompt} Be brief."))
    assert task.prompt_messages(task.samples[0], 1) == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Question: Q? Be brief."}]}]
    assert task.samples[0].messages[0]["content"][1]["text"] == "Q?"  # the sample is not mutated
    assert task.fingerprint(0) != task.fingerprint(1)
    with pytest.raises(ValueError, match="must contain"):
        Task("bad", [], score=lambda p, s: 1.0, metric="m", chance=0, seen=True, templates=("no slot",))


def test_registry():
    names = {t.name for t in list_tasks()}
    assert {"vqav2", "mme", "pope", "scienceqa", "refcoco"} <= names
    assert {f"world_{n}" for n in WORLD_TASKS} <= names
    register_task("test_only_tiny", lambda: Task("test_only_tiny", [], score=lambda p, s: 0.0, metric="m",
                                                 chance=0.0, seen=False), metric="m")
    assert get_task("test_only_tiny").name == "test_only_tiny"
    with pytest.raises(ValueError, match="already registered"):
        register_task("test_only_tiny", lambda: None, metric="m")
    with pytest.raises(KeyError, match="unknown eval task 'nope'"):
        get_task("nope")


@pytest.mark.parametrize("kind", sorted(TASK_KINDS))
def test_kind_metric_table_matches_builders(kind):
    assert TASK_KINDS[kind].build("k", [], chance=0.0, seen=True).metric == TASK_KINDS[kind].metric


# (world task, a correct answer for its first test sample or None to use the reference answer).
@pytest.mark.parametrize("name", sorted(WORLD_TASKS))
def test_world_tasks_score_their_own_reference_answers(name):
    task = get_task(f"world_{name}", n=6)
    world = WORLD_TASKS[name]
    assert (task.chance, task.seen, task.name) == (world.chance, world.seen, f"world_{name}")
    assert len(task.samples) == 6
    right = [task.judge(s, s.meta["answer"]) for s in task.samples]
    wrong = [task.judge(s, "zzz") for s in task.samples]
    good, bad = task.aggregate(right)[task.metric], task.aggregate(wrong)[task.metric]
    if world.kind == "caption":  # CIDEr of the first reference against all 5 is high, of junk 0
        assert good > 50 and bad == 0.0
    elif world.kind == "describe":  # CHAIR_i counts errors: none in the reference, none in junk (it names nothing)
        assert good == bad == 0.0
        assert task.aggregate(right)["recall"] == 100.0 and task.aggregate(wrong)["recall"] == 0.0
    else:
        assert good == 100.0 and bad == 0.0
        assert all(p.parsed.answer is None for p in wrong) or world.kind in ("vqa", "exact_match", "counting")


def test_world_grounding_reads_family_box_format():
    task = get_task("world_refcoco", n=2, box_format="norm1000")
    s = task.samples[0]
    as_1000 = ",".join(str(round(v * 1000)) for v in s.meta["box"])
    assert task.judge(s, as_1000).score == 1.0
    assert task.judge(s, "nothing").parsed.rule == "unparsed"


def test_mean_score_reports_each_question_type_beside_the_whole():
    """Worked by hand: side 1 of 2 right, choose 2 of 2, one untyped sample wrong -> 3/5 overall."""
    from mmtune.eval.task import Parsed, Prediction, mean_score

    def pred(score, **meta):
        return Prediction(_sample(answer="a", **meta), "a", Parsed("a", "r"), score)

    predictions = [pred(1.0, question_type="side"), pred(0.0, question_type="side"),
                   pred(1.0, question_type="choose"), pred(1.0, question_type="choose"), pred(0.0),
                   pred(None, question_type="side")]  # no per-sample score: counted nowhere
    assert mean_score("exact_match")(predictions) == {
        "exact_match": 60.0, "exact_match/choose": 100.0, "exact_match/side": 50.0}
    assert mean_score("m")([pred(1.0)]) == {"m": 100.0}  # no types, no extra keys


def test_world_gqa_reports_accuracy_per_question_type():
    from mmtune.world.tasks.seen import GQA_KINDS

    task = get_task("world_gqa", n=60)
    scores = task.aggregate([task.judge(s, s.meta["answer"]) for s in task.samples])
    assert {k for k in scores if k.startswith("exact_match/")} == {f"exact_match/{k}" for k in GQA_KINDS}
