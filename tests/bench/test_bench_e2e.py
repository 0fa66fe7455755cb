"""End to end on a tiny random LLaVA with real-format data (ScienceQA target, MME seen set),
driven by configs/bench_real_example.yaml as a user would; then resume and --report."""
import json
from pathlib import Path

import pytest
from PIL import Image

from mmtune.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bench_real_example.yaml"
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 50), "yellow": (240, 200, 0)}
ROWS = "last;last+wise_ft(alpha=0.5);lora(r=4, alpha=8)+replay(fraction=0.5)"


def _scienceqa(root: Path) -> None:
    """problems.json + pid_splits.json + images/<split>/<pid>/image.png, and a LLaVA JSON of the train split."""
    names = list(COLOURS)
    problems, splits, train = {}, {"train": [], "test": []}, []
    for i in range(8):
        split, pid, colour = ("train" if i < 4 else "test"), str(100 + i), names[i % 4]
        (root / "images" / split / pid).mkdir(parents=True)
        Image.new("RGB", (32, 32), COLOURS[colour]).save(root / "images" / split / pid / "image.png")
        choices = [colour, names[(i + 1) % 4]][:: 1 if i % 2 else -1]
        problems[pid] = {"question": "What color is the image?", "choices": choices, "answer": choices.index(colour),
                         "image": "image.png", "hint": "", "subject": "natural science", "split": split}
        splits[split].append(pid)
        if split == "train":
            options = "\n".join(f"{'AB'[k]}. {c}" for k, c in enumerate(choices))
            train.append({"id": pid, "image": f"images/train/{pid}/image.png", "conversations": [
                {"from": "human", "value": f"<image>\nWhat color is the image?\n{options}\n"
                                           "Answer with the option's letter from the given choices directly."},
                {"from": "gpt", "value": "AB"[choices.index(colour)]}]})
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    (root / "train.json").write_text(json.dumps(train))


def _mme(root: Path) -> None:
    """MME category folder (image + same-stem .txt of question<TAB>answer), and LLaVA JSON to replay."""
    (root / "existence").mkdir(parents=True)
    names, replay = list(COLOURS), []
    for i in range(2):
        Image.new("RGB", (32, 32), COLOURS[names[i]]).save(root / "existence" / f"img{i}.png")
        (root / "existence" / f"img{i}.txt").write_text(
            f"Is the image {names[i]}? Please answer yes or no.\tYes\n"
            f"Is the image {names[i + 2]}? Please answer yes or no.\tNo\n")
        replay.append({"id": f"m{i}", "image": f"existence/img{i}.png", "conversations": [
            {"from": "human", "value": f"<image>\nIs the image {names[i]}? Please answer yes or no."},
            {"from": "gpt", "value": "Yes"}]})
    (root / "train.json").write_text(json.dumps(replay))


def _pope(root: Path) -> None:
    """coco_pope_random.json (JSON lines) + val2014/ images."""
    (root / "val2014").mkdir(parents=True)
    lines = []
    for i, (colour, other) in enumerate([("red", "blue"), ("green", "yellow")]):
        Image.new("RGB", (32, 32), COLOURS[colour]).save(root / "val2014" / f"im{i}.png")
        lines += [{"question_id": 2 * i, "image": f"im{i}.png", "text": f"Is the image {colour}?", "label": "yes"},
                  {"question_id": 2 * i + 1, "image": f"im{i}.png", "text": f"Is the image {other}?", "label": "no"}]
    (root / "coco_pope_random.json").write_text("\n".join(json.dumps(line) for line in lines))


def _argv(fx: Path, out: Path) -> list[str]:
    sqa, mme = fx / "scienceqa", fx / "mme"
    sets = [
        f"model={fx / 'model'}",
        f"targets=[{{name: scienceqa, task: scienceqa, task_args: {{root: {sqa}}}, train: {sqa}/train.json, root: {sqa}}}]",
        f"seen=[{{name: mme, task: mme, task_args: {{root: {mme}}}, metric: accuracy, train: {mme}/train.json, root: {mme}}}]",
        "n_train=4", "n_test=4", "eval_batch_size=4", "training.max_steps=2", "training.batch_size=2",
        "training.grad_accum=1", "training.max_length=null", "training.gradient_checkpointing=false",
    ]
    return ["bench", "--config", str(CONFIG), "--out", str(out), "--strategies", ROWS,
            *[a for s in sets for a in ("--set", s)]]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from mmtune.models.tiny import save_tiny

    fx = tmp_path_factory.mktemp("fixture")
    _scienceqa(fx / "scienceqa")
    _mme(fx / "mme")
    _pope(fx / "pope")
    save_tiny("llava", fx / "model")
    out = fx / "bench"
    assert main(_argv(fx, out)) == 0
    return fx, out


def test_bench_runs_every_row_and_reports(bench):
    _, out = bench
    runs = {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert set(runs) == {"scienceqa__last__seed0", "scienceqa__last_wise_ft_alpha=0.5__seed0",
                         "scienceqa__lora_r=4_alpha=8_replay_fraction=0.5__seed0"}
    for r in runs.values():
        assert r["E"] == pytest.approx(r["target_score"] - r["target_zero_shot"])
        assert r["F"] == pytest.approx(r["seen_after"]["mme"] - r["seen_before"]["mme"])
        assert r["O"] == pytest.approx(r["E"] + r["F"])
    lora = runs["scienceqa__lora_r=4_alpha=8_replay_fraction=0.5__seed0"]
    assert 0 < lora["trainable_params"] < runs["scienceqa__last__seed0"]["trainable_params"]
    assert runs["scienceqa__last_wise_ft_alpha=0.5__seed0"]["kind"] == "wise_ft"
    # Only the WiSE-FT source keeps its weights on disk.
    assert [p.name for p in (out / "work").iterdir()] == ["scienceqa__last__seed0"]
    base = json.loads((out / "base.json").read_text())
    assert set(base["scores"]) == {"scienceqa", "mme"}
    table = (out / "report.md").read_text()
    assert "| last+wise_ft(alpha=0.5)" in table and "**Recommendation for scienceqa:" in table
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_resumes_without_retraining(bench, monkeypatch):
    import mmtune.eval.runner
    import mmtune.recipes.sft

    fx, out = bench
    calls = {"train": 0, "eval": 0}
    train, evaluate = mmtune.recipes.sft.train_sft, mmtune.eval.runner.evaluate

    def counting_train(*args, **kwargs):
        calls["train"] += 1
        return train(*args, **kwargs)

    def counting_eval(*args, **kwargs):
        calls["eval"] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(mmtune.recipes.sft, "train_sft", counting_train)
    monkeypatch.setattr(mmtune.eval.runner, "evaluate", counting_eval)
    assert main(_argv(fx, out)) == 0
    assert calls == {"train": 0, "eval": 0}  # base and every run finished before
    (out / "runs" / "scienceqa__lora_r=4_alpha=8_replay_fraction=0.5__seed0.json").unlink()
    assert main(_argv(fx, out)) == 0
    assert calls == {"train": 1, "eval": 1}
    assert len(list((out / "runs").glob("*.json"))) == 3


def test_bench_report_only_and_changed_settings(bench, capsys):
    fx, out = bench
    (out / "report.md").unlink()
    assert main(["bench", "--report", str(out)]) == 0
    assert (out / "report.md").exists() and "scienceqa" in capsys.readouterr().out
    # Same output folder, different training: refuse instead of mixing incomparable runs.
    argv = _argv(fx, out) + ["--set", "training.max_steps=3"]
    assert main(argv) == 2
    assert "other settings" in capsys.readouterr().err


def test_bench_merges_the_targets_task_vectors(bench, tmp_path):
    fx, _ = bench
    sqa, mme, pope = fx / "scienceqa", fx / "mme", fx / "pope"
    out = tmp_path / "merge"
    argv = _argv(fx, out) + [
        "--strategies", "last;last+merge(method=ties, density=0.5)",
        "--set", (f"targets=[{{name: scienceqa, task: scienceqa, task_args: {{root: {sqa}}}, "
                  f"train: {sqa}/train.json, root: {sqa}}}, {{name: mme, task: mme, task_args: {{root: {mme}}}, "
                  f"metric: accuracy, train: {mme}/train.json, root: {mme}}}]"),
        "--set", f"seen=[{{name: pope, task: pope, task_args: {{root: {pope}}}, metric: accuracy}}]",
    ]
    assert main(argv) == 0
    merged = [json.loads(p.read_text()) for p in (out / "runs").glob("*merge*.json")]
    assert sorted(r["target"] for r in merged) == ["mme", "scienceqa"]
    assert {r["kind"] for r in merged} == {"merge"}
    # One merged model, scored once on the seen set: both records share its seen scores.
    assert merged[0]["seen_after"] == merged[1]["seen_after"]
    assert (out / "evals" / "merged__last_merge_method=ties_density=0.5__seed0" / "results.json").exists()


def test_bench_over_two_seeds_reports_mean_and_std(bench, tmp_path):
    # What the full preset does (several seeds): each seed is its own run, the row is mean ± std.
    import statistics

    fx, _ = bench
    out = tmp_path / "seeds"
    argv = _argv(fx, out)
    argv[argv.index("--strategies") + 1] = "last"
    assert main(argv + ["--set", "seeds=[0, 1]"]) == 0
    results = json.loads((out / "results.json").read_text())
    runs = [r for r in results["runs"] if r["target"] == "scienceqa" and r["strategy"] == "last"]
    assert sorted(r["seed"] for r in runs) == [0, 1]
    row = results["summary"]["scienceqa"]["last"]
    assert row["seeds"] == [0, 1]
    for key in ("E", "F", "O"):
        values = [r[key] for r in runs]
        assert row[key] == pytest.approx([statistics.mean(values), statistics.stdev(values)])
    assert "±" in (out / "report.md").read_text()
    # Each run keeps its sets' per-sample scores (the eval runner's answers, judged again); their means are
    # the run's scores, and the report's intervals come from them.
    base = json.loads((out / "base.json").read_text())
    for run in runs:
        record = json.loads((out / "runs" / f"{run['run_id']}.json").read_text())
        for name, score in [("scienceqa", record["target_score"]), ("mme", record["seen_after"]["mme"])]:
            values = record["per_sample"][name]["values"]
            assert len(values) == 4 and statistics.mean(values) == pytest.approx(score)
    assert statistics.mean(base["per_sample"]["scienceqa"]["values"]) == pytest.approx(base["scores"]["scienceqa"])
    for key in ("E_ci", "F_ci", "O_ci"):
        assert row[key][0] <= row[key][1]
    assert results["notes"] == [] and "[n/a]" not in (out / "report.md").read_text()
    assert results["bootstrap"]["resamples"] == 1000 and "per_sample" not in results["runs"][0]


def test_full_preset_multi_seed_path_on_a_tiny_base(bench, tmp_path):
    # The full preset as shipped (its five world targets, six seen sets with caption's CIDEr-D and POPE's F1,
    # a merge across targets) on two seeds, shrunk to seconds: a tiny random LLaVA, 4 samples, 1 step.
    fx, _ = bench
    out = tmp_path / "full"
    argv = ["bench", "--preset", "full", "--out", str(out), "--strategies", "last;last+merge(method=ties, density=0.5)",
            *[a for s in (f"model={fx / 'model'}", "n_train=4", "n_test=4", "seeds=[0, 1]", "training.max_steps=1",
                          "training.batch_size=2", "eval_batch_size=8", "bootstrap_resamples=200")
              for a in ("--set", s)]]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["summary"]) == ["iconqa", "itm", "refcoco", "rsvqa", "sciqa"]
    row = results["summary"]["rsvqa"]["last+merge(method=ties, density=0.5)"]
    assert row["seeds"] == [0, 1] and row["ranges"]["caption"] == 1000.0 and row["ranges"]["pope"] == 100.0
    assert set(row["seen_deltas_ci"]) == {"caption", "gqa", "mme", "ocr", "pope", "vqa"}
    base = json.loads((out / "base.json").read_text())
    assert base["per_sample"]["pope"]["statistic"] == "f1" and base["per_sample"]["caption"]["statistic"] == "mean"
    assert results["scale"]["ranges"]["cider"] == 1000.0
    assert len(list((out / "runs").glob("*.json"))) == 5 * 2 * 2


def test_bench_logs_each_run_to_its_tracker_and_card(bench):
    # TensorBoard is installed (dev extra), so each run's losses and scores are event files under its run id,
    # read back with TensorBoard's own reader; the run whose weights are kept has its scores in its model card.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mmtune.model_card import read_card

    _, out = bench
    rid = "scienceqa__lora_r=4_alpha=8_replay_fraction=0.5__seed0"
    record = json.loads((out / "runs" / f"{rid}.json").read_text())
    events = EventAccumulator(str(out / "tracking" / rid))
    events.Reload()
    # the run's mean loss, logged at its end (once more if an earlier test ran it again)
    assert {e.step for e in events.Scalars("train/train_loss")} == {2}
    for name, value in [("E", record["E"]), ("F", record["F"]), ("O", record["O"]),
                        ("seen/mme", record["seen_after"]["mme"]), ("target/scienceqa", record["target_score"])]:
        logged = events.Scalars(f"eval/{name}")[-1]
        assert (logged.step, logged.value) == (2, pytest.approx(value, abs=1e-4))
    kept = json.loads((out / "runs" / "scienceqa__last__seed0.json").read_text())
    metadata, body = read_card(out / "work" / "scienceqa__last__seed0" / "final")
    results = {(r["dataset"]["name"], r["metrics"][0]["type"]): r["metrics"][0]["value"]
               for r in metadata["model-index"][0]["results"]}
    assert results[("scienceqa", "E")] == pytest.approx(kept["E"], abs=1e-4)
    assert results[("mme", "seen score")] == pytest.approx(kept["seen_after"]["mme"], abs=1e-4)
    assert metadata["base_model"] == str(out.parent / "model") and "`last`" in body
