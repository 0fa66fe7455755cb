"""The alignment bench: its preset, E's direction on CHAIR_i, the per-sample CHAIR_i bootstrap, the
existence pairs, and the bench end to end on an untrained world model (runs, report, plots, resume)."""
import json

import numpy as np
import pytest

from mmtune.bench.align import (
    PRESETS,
    alignment_scores,
    existence_pairs,
    load_align_config,
    parse_align_row,
)
from mmtune.bench.align_report import trailing_mean
from mmtune.bench.sample_scores import sample_scores
from mmtune.bench.uncertainty import SampleScores, resample_indices
from mmtune.cli import main
from mmtune.config import ConfigError


def test_align_preset_loads_twelve_rows_on_the_cooc_world():
    config = load_align_config()
    rows = config.parsed_rows()
    assert len(rows) == 12
    assert {(r.objective, r.strategy) for r in rows} == {
        (o, s) for o in ("sft", "dpo", "kto", "mdpo", "grpo") for s in ("lora", "full")} | {("dpo", "lora"), ("dpo", "full")}
    assert sorted(r.arguments.get("loss_type") for r in rows if r.objective == "dpo") == ["ipo", "ipo", "sigmoid", "sigmoid"]
    bench = config.bench_config()
    assert [t.name for t in bench.targets] == ["describe", "pope", "pope_adversarial"]
    # descriptions on the default world's independent scenes, POPE on the variant's (its companions absent)
    assert "variant" not in bench.targets[0].task_args
    assert all(t.task_args["variant"] == "cooc" for t in bench.targets[1:])
    assert bench.targets[2].task_args["pope_split"] == "adversarial"
    assert [s.name for s in bench.seen] == ["vqa", "gqa", "ocr", "mme"]
    assert config.world_preset == "quick-cooc" and PRESETS["align"]["world"] == "cooc"


@pytest.mark.parametrize("row, message", [
    ("lora", "write an objective"),
    ("dpo", "write an objective"),
    ("sft(beta=0.1)+lora", "sft takes no arguments"),
    ("dpo(loss_type=kto)+lora", "does not apply to method dpo"),
    ("grpo(num_generations=1)+lora", "num_generations must be >= 2"),
])
def test_a_bad_row_is_refused_by_name(row, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_align_config(overrides=[f"rows=[{row}]"])
    assert "row" in str(e.value)


def test_e_counts_the_chair_i_drop_as_an_improvement():
    # Worked by hand: CHAIR_i 30 -> 20 is +10 (lower is better), POPE F1 80 -> 86 and 70 -> 76 are +6 each:
    # E = (10 + 6 + 6) / 3 = 7.333; seen vqa 90 -> 88 (-2), mme 80 -> 81 (+1): F = -0.5; O = 6.833.
    before = {"describe": 30.0, "pope": 80.0, "pope_adversarial": 70.0, "vqa": 90.0, "mme": 80.0}
    after = {"describe": 20.0, "pope": 86.0, "pope_adversarial": 76.0, "vqa": 88.0, "mme": 81.0}
    ranges = dict.fromkeys(before, 100.0)
    s = alignment_scores(before, after, ranges, {"describe"}, ["describe", "pope", "pope_adversarial"], ["vqa", "mme"])
    assert s["E"] == pytest.approx(22 / 3) and s["F"] == pytest.approx(-0.5) and s["O"] == pytest.approx(22 / 3 - 0.5)
    assert s["hallucination_deltas"]["describe"] == -10.0  # raw change kept beside
    assert s["hallucination_scaled"] == {"describe": 10.0, "pope": 6.0, "pope_adversarial": 6.0}
    # more hallucination is a negative E
    worse = alignment_scores(before, {**after, "describe": 40.0}, ranges, {"describe"}, ["describe"], ["vqa"])
    assert worse["E"] == -10.0


def test_lower_is_better_comes_from_the_task_kind():
    from mmtune.bench.scores import higher_is_better, specialization

    assert not higher_is_better("chair_i")  # TASK_KINDS["describe"].higher_is_better is False
    assert higher_is_better("f1") and higher_is_better("vqa_accuracy") and higher_is_better("cider")
    assert specialization(20.0, 30.0, higher_is_better=False) == 10.0  # CHAIR_i 30 -> 20: +10
    assert specialization(20.0, 30.0) == -10.0  # the tuning bench's default direction, unchanged


def _describe_predictions():
    from mmtune.eval.task import get_task

    task = get_task("world_describe", n=6, variant="cooc")
    said = ["a circle and a star", "", "a square, a diamond and a cross", "a star", "two circles", "a cross and a star"]
    return task, [task.judge(s, text) for s, text in zip(task.samples, said)]


def test_per_sample_chair_i_rebuilds_the_ratio_on_every_resample():
    task, predictions = _describe_predictions()
    headline = task.aggregate(predictions)["chair_i"]
    found = sample_scores(task, predictions, "chair_i", headline)
    assert found is not None and found.statistic == "ratio" and found.values.shape == (6, 2)
    # [hallucinated mentions, mentions] per description: the empty one contributes [0, 0]
    assert found.values[1].tolist() == [0.0, 0.0]
    assert found.values[:, 1].sum() == task.aggregate(predictions)["n_mentions"]
    for idx in resample_indices("describe", 6, resamples=20):
        assert found.score(idx) == pytest.approx(task.aggregate([predictions[i] for i in idx])["chair_i"])


def test_ratio_statistic_by_hand():
    # [hallucinated, mentions]: (1 + 0 + 2) / (3 + 2 + 5) = 30%; no mentions at all scores 0 as CHAIR does
    scores = SampleScores("ratio", np.array([[1, 3], [0, 2], [2, 5], [0, 0]], dtype=float))
    assert scores.score() == pytest.approx(30.0)
    assert scores.score(np.array([[3, 3], [0, 1]])).tolist() == pytest.approx([0.0, 20.0])


def test_existence_pairs_reject_the_wrong_answer():
    from mmtune.world.scenes import world_variant
    from mmtune.world.tasks import get_world_task

    with world_variant("cooc", noisy=False):
        samples = get_world_task("pope").samples("train", 8, seed=0)
    pairs = existence_pairs(samples)
    for sample, pair in zip(samples, pairs):
        assert pair.chosen == sample.meta["answer"] and {pair.chosen, pair.rejected} == {"yes", "no"}
        assert pair.messages == sample.prompt_messages() and pair.meta["construction"]["method"] == "injected"


def test_curves_are_drawn_as_a_trailing_mean():
    assert trailing_mean([1.0, 3.0, 5.0, 7.0], window=2) == [1.0, 2.0, 4.0, 6.0]  # by hand
    assert trailing_mean([2.0, 4.0, 9.0], window=5) == [2.0, 3.0, 5.0]


def test_a_row_reads_objective_then_strategy():
    row = parse_align_row("dpo(loss_type=ipo, beta=0.2)+lora(r=4, alpha=8)")
    assert (row.objective, row.arguments, row.strategy, row.strategy_name) == (
        "dpo", {"loss_type": "ipo", "beta": 0.2}, "lora(r=4, alpha=8)", "lora")


def _argv(model, out):
    sets = [f"model={model}", "n_test=4", "n_describe_pairs=2", "n_existence_pairs=2", "n_grpo_prompts=2",
            "eval_batch_size=4", "training.max_steps=2", "training.batch_size=2", "grpo.max_steps=1",
            "grpo.batch_size=4", "grpo.num_generations=2", "grpo.max_completion_length=4", "bootstrap_resamples=100"]
    return ["bench", "--preset", "align", "--out", str(out), "--strategies", "dpo(loss_type=sigmoid)+lora(r=4, alpha=8);sft+full",
            *[a for s in sets for a in ("--set", s)]]


def test_align_bench_end_to_end_and_resume(untrained_world_model, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(_argv(untrained_world_model, out)) == 0
    runs = sorted((out / "runs").glob("*.json"))
    assert [p.name for p in runs] == ["dpo_loss_type=sigmoid_lora_r=4_alpha=8__seed0.json", "sft_full__seed0.json"]
    dpo, sft = (json.loads(p.read_text()) for p in runs)
    assert dpo["objective"] == "dpo" and sft["objective"] == "sft"
    assert [s["step"] for s in dpo["curve"]] == [1, 2] and all("margin" in s and "accuracy" in s for s in dpo["curve"])
    assert all("margin" not in s for s in sft["curve"])
    assert dpo["lower_is_better"] == ["describe"] and dpo["per_sample"]["describe"]["statistic"] == "ratio"
    assert dpo["E"] == pytest.approx(sum(dpo["hallucination_scaled"].values()) / 3)
    assert (out / "prefs" / "pairs.jsonl").read_text().count("\n") == 4  # 2 describe + 2 existence pairs
    report = (out / "report.md").read_text()
    assert "describe chair_i drop" in report and "dpo(loss_type=sigmoid)+lora(r=4, alpha=8)" in report
    assert "**Recommendation:" in report and "Scores after alignment" in report
    assert (out / "pareto.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["sft+full"]["E_ci"] is not None  # per-sample scores on every set
    before = [p.read_text() for p in runs]

    capsys.readouterr()
    assert main(_argv(untrained_world_model, out)) == 0  # resumed: nothing retrained
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
    assert [p.read_text() for p in sorted((out / "runs").glob("*.json"))] == before
    assert main(["bench", "--report", str(out)]) == 0  # the align report re-rendered from the runs
    assert "preference alignment" in (out / "report.md").read_text()


def test_align_bench_refuses_tuning_bench_options(tmp_path, capsys):
    assert main(["bench", "--preset", "align", "--targets", "sciqa", "--out", str(tmp_path)]) == 2  # a usage error
    assert "does not take --targets" in capsys.readouterr().err
