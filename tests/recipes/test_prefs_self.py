"""Self-generated pairs: a tiny random LLaVA samples several descriptions per world scene, CHAIR's
count of hallucinated objects ranks them, best is paired against worst and ties are dropped."""
from __future__ import annotations

import pytest

from mmtune.eval.metrics.hallucination import extract_objects, world_vocabulary
from mmtune.eval.task import get_task
from mmtune.recipes.prefs import SelfPairSettings, _best_against_worst, self_pairs, task_verifier

SETTINGS = SelfPairSettings(n=6, max_new_tokens=24, batch_size=4, seed=0)


def hallucinated(text: str, objects: list[str]) -> int:
    return sum(o not in objects for o in extract_objects(text, world_vocabulary()))


def named_present(text: str, objects: list[str]) -> int:
    return len(set(objects) & set(extract_objects(text, world_vocabulary())))


@pytest.fixture(scope="module")
def describe_task():
    return get_task("world_describe", split="train", n=8)


@pytest.fixture(scope="module")
def model_and_processor():
    from mmtune.models.tiny import build_tiny

    return build_tiny("llava", seed=0)


@pytest.fixture(scope="module")
def pairs(model_and_processor, describe_task):
    model, processor = model_and_processor
    return self_pairs(model, processor, describe_task, SETTINGS, progress=False)


def test_chosen_hallucinates_less_than_rejected_by_chairs_count(pairs, describe_task):
    by_id = {s.id: s for s in describe_task.samples}
    assert pairs, "8 prompts x 6 random answers should give at least one untied prompt"
    for pref in pairs:
        sample = by_id[pref.id.removesuffix("-self")]
        record = pref.meta["construction"]
        objects = sample.meta["objects"]
        assert hallucinated(pref.chosen, objects) == -record["scores"]["chosen"]
        assert hallucinated(pref.rejected, objects) == -record["scores"]["rejected"]
        assert named_present(pref.chosen, objects) == record["ranks"]["chosen"]
        assert named_present(pref.rejected, objects) == record["ranks"]["rejected"]
        assert record["scores"]["chosen"] == max(record["scores"]["all"]) > min(record["scores"]["all"]) == \
            record["scores"]["rejected"]
        assert len(record["scores"]["all"]) == 6 and record["method"] == "self" and record["seed"] == 0
        assert record["verifier"] == "hallucinated objects (world vocabulary), then present objects named"
        assert pref.messages == describe_task.prompt_messages(sample) and pref.images == sample.images


def test_same_seed_same_pairs_other_seed_other_answers(pairs, model_and_processor, describe_task):
    model, processor = model_and_processor
    # the first batch of 4 prompts is sampled from the same generator state whatever follows it
    first = {s.id + "-self" for s in describe_task.samples[:4]}
    again = self_pairs(model, processor, describe_task, SETTINGS, limit=4, progress=False)
    assert [(p.id, p.chosen, p.rejected) for p in again] == [(p.id, p.chosen, p.rejected) for p in pairs if p.id in first]
    other_seed = SelfPairSettings(n=6, max_new_tokens=24, batch_size=4, seed=1)
    other = self_pairs(model, processor, describe_task, other_seed, limit=4, progress=False)
    assert {p.chosen for p in other}.isdisjoint(p.chosen for p in pairs)


def test_ties_and_empty_answers_give_no_pair_and_ranks_order_equal_scores():
    assert _best_against_worst(["a", "b", "c"], [(1.0, 0.0), (1.0, 2.0), (1.0, 1.0)]) is None  # ranks never untie
    assert _best_against_worst(["a", "b", "c"], [(0.0, 0.0), (1.0, 0.0), (1.0, 0.0)]) == (
        ("b", (1.0, 0.0)), ("a", (0.0, 0.0)), [0.0, 1.0, 1.0])
    # among equal best scores the higher rank is chosen; among equal worst the lower is rejected
    assert _best_against_worst(["a", "b", "c", "d"], [(0.0, 1.0), (0.0, 3.0), (-1.0, 2.0), (-1.0, 0.0)]) == (
        ("b", (0.0, 3.0)), ("d", (-1.0, 0.0)), [0.0, 0.0, -1.0, -1.0])
    assert _best_against_worst(["same", "same"], [(1.0, 0.0), (0.0, 0.0)]) is None
    assert _best_against_worst(["", "good", "bad"], [(-5.0, 0.0), (1.0, 0.0), (0.0, 0.0)])[:2] == (
        ("good", (1.0, 0.0)), ("bad", (0.0, 0.0)))
    assert _best_against_worst(["", "only"], [(0.0, 0.0), (1.0, 0.0)]) is None


def test_task_metric_verifier_scores_against_ground_truth():
    task = get_task("world_vqa", split="train", n=2)
    sample = task.samples[0]
    # VQA accuracy with 8 of 10 annotators giving the answer and 2 its synonym: the answer scores 1,
    # the synonym min(1, 2/3) averaged over the 10 leave-one-out subsets = 0.6.
    verify = task_verifier(task)
    answer, synonym = sample.meta["answers"][0], sample.meta["answers"][-1]
    assert verify(sample, answer) == (1.0, 0.0)
    assert verify(sample, synonym)[0] == pytest.approx(0.6)
    assert verify(sample, "nothing like it") == (0.0, 0.0)
    with pytest.raises(ValueError, match="scores only whole sets"):
        task_verifier(get_task("world_caption", n=1))(get_task("world_caption", n=1).samples[0], "a red circle.")


def test_settings_are_checked():
    with pytest.raises(ValueError, match="sample at least 2 answers"):
        SelfPairSettings(n=1)
    with pytest.raises(ValueError, match="temperature > 0"):
        SelfPairSettings(temperature=0)


# --- mmtune prefs build ----------------------------------------------------------------------------

def prefs_cli(*argv: str) -> int:
    """Run ``mmtune prefs build ...`` through its own parser (cli.py collects the module)."""
    import argparse

    from mmtune.recipes import prefs_commands

    parser = argparse.ArgumentParser(prog="mmtune")
    prefs_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prefs", "build", *argv])
    return args.func(args)


def test_cli_builds_world_injected_pairs_then_corrupts_their_images(tmp_path, capsys):
    from mmtune.data.preferences import read_preferences

    out = tmp_path / "injected.jsonl"
    assert prefs_cli("--method", "injected", "--task", "describe", "--n", "8", "--world-variant", "cooc",
                     "--out", str(out)) == 0
    assert f"{out}: 8 pairs (attribute: 2, count: 2, object: 2, position: 2)" in capsys.readouterr().out
    injected = read_preferences(out)
    assert len(injected) == 8 and all(p.meta["construction"]["method"] == "injected" for p in injected)

    corrupted = tmp_path / "mdpo" / "pairs.jsonl"
    assert prefs_cli("--method", "corrupt", "--input", str(out), "--corruption", "noise", "--out", str(corrupted)) == 0
    back = read_preferences(corrupted)
    assert [(p.chosen, p.rejected) for p in back] == [(p.chosen, p.rejected) for p in injected]
    for pref in back:
        record = pref.meta["image_corruption"]
        assert record["method"] == "noise" and (corrupted.parent / record["image"]).is_file()


def test_cli_builds_self_pairs_from_a_checkpoint(tiny_dir, tmp_path, capsys):
    from mmtune.data.preferences import read_preferences

    out = tmp_path / "self.jsonl"
    code = prefs_cli("--method", "self", "--model", str(tiny_dir), "--task", "world_describe", "--n", "4",
                     "--world-variant", "cooc", "--samples", "6", "--max-new-tokens", "24", "--out", str(out))
    printed = capsys.readouterr().out
    pairs = read_preferences(out)
    assert pairs and code == 0 and f"{out}: {len(pairs)} pairs (self: {len(pairs)})" in printed
    assert all(p.meta["construction"]["method"] == "self" and p.id.startswith("describe-train") for p in pairs)
    # the prompts are the cooc world's scenes (the task says so in its name), on the train split
    assert {p.meta["construction"]["task"] for p in pairs} == {"world_describe_cooc"}
    from PIL import Image

    cooc = {s.id + "-self": s for s in get_task("world_describe", split="train", n=4, variant="cooc").samples}
    for pref in pairs:
        assert Image.open(pref.images[0]).convert("RGB").tobytes() == cooc[pref.id].images[0].tobytes()


def test_cli_names_what_a_method_needs():
    with pytest.raises(ValueError, match="--method self needs --model and --task"):
        prefs_cli("--method", "self", "--out", "x.jsonl")
    with pytest.raises(ValueError, match="--method corrupt needs --input"):
        prefs_cli("--method", "corrupt", "--out", "x.jsonl")
