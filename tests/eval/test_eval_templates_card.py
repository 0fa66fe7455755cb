"""`mmtune eval --templates all` (score per instruction wording, sensitivity), --report-to tensorboard, and the
scores added to an mmtune checkpoint's model card."""
import json
import math
import shutil
import statistics

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmtune.cli import main
from mmtune.eval.commands import INSTRUCTION_WORDINGS
from mmtune.eval.runner import evaluate
from mmtune.eval.task import get_task
from mmtune.model_card import read_card, write_card
from mmtune.models.tiny import save_tiny
from mmtune.strategies.checkpoint import load_tuned

WORDING = "Question: {prompt}"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A plain transformers checkpoint, and a copy of it whose card mmtune wrote."""
    root = tmp_path_factory.mktemp("templates")
    plain = save_tiny("llava", root / "plain")
    ours = root / "ours"
    shutil.copytree(plain, ours)
    write_card(ours, name="ours", base_model=str(plain), strategy="full", recipe="sft")
    return plain, ours


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-4)


def test_templates_all_scores_each_wording_logs_them_and_fills_the_card(checkpoints, tmp_path, capsys):
    _, ours = checkpoints
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(ours), "--tasks", "world_itm", "--n", "6", "--batch-size", "6", "--out", str(out),
                 "--templates", "all", "--template", WORDING, "--report-to", "tensorboard"]) == 0
    printed = capsys.readouterr().out
    found = json.loads((out / "results.json").read_text())["tasks"]["world_itm"]
    by_template = found["templates"]["scores_by_template"]
    assert list(by_template) == ["{prompt}", WORDING]
    # Each wording's score is what evaluating the task under that template gives, the first one the usual score.
    loaded = load_tuned(ours)
    task = get_task("world_itm", n=6)
    task.templates = ("{prompt}", WORDING)
    for i, score in enumerate(by_template.values()):
        assert score == evaluate(loaded.model, loaded.processor, [task], template=i, progress=False)["world_itm"]["score"]
    assert by_template["{prompt}"] == found["score"]
    scores = list(by_template.values())
    expected = statistics.pstdev(scores) / statistics.mean(scores) if statistics.mean(scores) else math.nan
    assert _same(found["templates"]["sensitivity"], expected)
    assert f"| world_itm | {WORDING} | {by_template[WORDING]:.2f} |" in printed and "**sensitivity**" in printed
    assert "| world_itm | Question: {prompt} |" in (out / "results.md").read_text()
    assert (out / "world_itm.template1.samples.jsonl").is_file()
    # TensorBoard gets the headline score and the sensitivity, under the model folder's name.
    events = EventAccumulator(str(out / "runs"))
    events.Reload()
    assert _same(events.Scalars("eval/world_itm")[0].value, found["score"])
    assert _same(events.Scalars("eval/world_itm/sensitivity")[0].value, found["templates"]["sensitivity"])
    # The card mmtune wrote gains the scores; the rest of it stays.
    metadata, body = read_card(ours)
    results = {(r["dataset"]["name"], r["metrics"][0]["type"]): r["metrics"][0]["value"]
               for r in metadata["model-index"][0]["results"]}
    assert _same(results[("world_itm", "accuracy")], found["score"])
    assert ("world_itm", "sensitivity") in results and "## Scores" in body and "`full`" in body


def test_a_card_from_elsewhere_is_left_alone_and_default_wordings(checkpoints, tmp_path, capsys):
    plain, _ = checkpoints
    assert main(["eval", "--model", str(plain), "--tasks", "world_itm", "--n", "2", "--batch-size", "2",
                 "--templates", "all", "--cache-dir", str(tmp_path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["world_itm"]["templates"]
    assert list(found["scores_by_template"]) == ["{prompt}", *INSTRUCTION_WORDINGS]
    assert not (plain / "README.md").exists()


def test_eval_tracking_and_template_options_are_checked(checkpoints, tmp_path, capsys):
    plain, _ = checkpoints
    base = ["eval", "--model", str(plain), "--tasks", "world_itm", "--n", "2"]
    assert main(base + ["--template", WORDING]) == 2
    assert "add --templates all" in capsys.readouterr().err
    assert main(base + ["--templates", "all", "--template", "no placeholder"]) == 2
    assert "--template: task 'world_itm': template 'no placeholder' must contain '{prompt}'" in capsys.readouterr().err
    assert main(base + ["--report-to", "tensorboard"]) == 2
    assert "--report-to needs --out" in capsys.readouterr().err
    assert main(base + ["--report-to", "tensorbored", "--out", str(tmp_path)]) == 2
    assert "--report-to: unknown tracker 'tensorbored'" in capsys.readouterr().err
