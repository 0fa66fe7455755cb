"""benchmarks/sft_throughput.py's pure parts: data export to each tool's format, the rotation, the summary.

The runs themselves need the LLaMA-Factory and ms-swift venvs and minutes; these checks need neither.
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("sft_throughput")
contenders = _load("sft_contenders")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    samples = harness.mixed_length_samples(3)
    return samples, harness.export_data(samples, tmp_path_factory.mktemp("data"))


def test_export_writes_each_format_from_the_same_samples(exported):
    from PIL import Image

    from mmtune.data.readers import read_records

    samples, files = exported
    assert set(files) == set(harness.CONTENDERS)
    read_back = read_records(files["mmtune"])
    assert [s.messages for s in read_back] == [s.messages for s in samples]
    for original, again in zip(samples, read_back):
        assert Path(again.images[0]).suffix == ".png"
        assert Image.open(again.images[0]).tobytes() == original.images[0].tobytes()
    assert files["trl"].read_text() == files["mmtune"].read_text()  # TRL reads mmtune's chat format as is

    info = json.loads((files["llamafactory"] / "dataset_info.json").read_text())
    lf_rows = json.loads((files["llamafactory"] / info["fair"]["file_name"]).read_text())
    swift_rows = [json.loads(line) for line in files["ms-swift"].read_text().splitlines()]
    for rows in (lf_rows, swift_rows):
        assert [r["messages"][0]["content"] for r in rows] == ["<image>describe the colors"] * 3
        assert [r["messages"][1]["content"] for r in rows] == [s.text_of("assistant")[0] for s in samples]
        assert [r["images"] for r in rows] == [[str(Path(s.images[0]))] for s in read_back]


def test_foreign_templates_render_the_tiny_llava_chat_template(exported):
    """LF's registered template and ms-swift's must put the same text around each turn as the model's own."""
    from mmtune.models.tiny import build_tiny

    samples, _ = exported
    _, processor = build_tiny("llava")
    rendered = processor.apply_chat_template(samples[0].messages, tokenize=False)
    answer = samples[0].text_of("assistant")[0]
    expected = (contenders.USER_PREFIX + "<image>describe the colors" + contenders.ASSISTANT_PREFIX + answer
                + contenders.TURN_END)
    assert rendered.rstrip("\n") == expected  # the final newline is outside the loss and no token


def test_rounds_rotate_so_each_contender_takes_each_position():
    orders = harness.rotated_orders(["A", "B", "C", "D"], 5)
    assert ["".join(o) for o in orders] == ["ABCD", "BCDA", "CDAB", "DABC", "ABCD"]
    assert all(sorted(o[i] for o in orders[:4]) == ["A", "B", "C", "D"] for i in range(4))


def _run(contender, round_, samples_per_s, wall, losses):
    return {"contender": contender, "round": round_, "samples_per_s": samples_per_s, "wall_seconds": wall,
            "losses": losses, "trainable_params": 16384, "peak_memory_mb": 500.0 + round_}


def test_summary_medians_ratios_per_round_and_loss_differences():
    runs = [_run("mmtune", 0, 200.0, 8.0, [6.0, 5.0]), _run("trl", 0, 100.0, 20.0, [6.0, 5.5]),
            _run("mmtune", 1, 180.0, 9.0, [6.0, 5.0]), _run("trl", 1, 120.0, 21.0, [6.0, 5.5]),
            _run("mmtune", 2, 210.0, 7.0, [6.0, 5.0]), _run("trl", 2, 70.0, 22.0, [6.0, 5.5])]
    summary = harness.summarize(runs)
    assert summary["mmtune"]["samples_per_s"] == {"median": 200.0, "min": 180.0, "max": 210.0}
    assert summary["trl"]["wall_seconds"] == {"median": 21.0, "min": 20.0, "max": 22.0}
    assert summary["trl"]["baseline_ratio"] == {"median": 2.0, "min": 1.5, "max": 3.0}  # 2.0, 1.5, 3.0 per round
    assert summary["trl"]["loss_max_abs_diff"] == 0.5 and summary["trl"]["first_loss_abs_diff"] == 0.0
    assert "baseline_ratio" not in summary["mmtune"]
    assert summary["mmtune"]["peak_rss_mb"] == 502.0
    table = harness.markdown_table(summary)
    assert "| trl | 100.0 (70.0-120.0) | 2.00x (1.50-3.00) | 21.0 | 0.5 (0) | 16,384 | 502 |" in table


def test_settings_are_printed_and_checked():
    text = harness.settings_text(harness.Settings())
    for needle in ("lora_r = 8", "lora_alpha = 16", "batch_size = 8", "precision = 'fp32'", "torch_threads = 1"):
        assert needle in text
    with pytest.raises(ValueError, match="--steps"):
        harness.Settings(steps=0)


def test_settings_a_trainer_really_ran_with_are_compared_to_the_baseline():
    applied = {"optim": "adamw_torch_fused", "adam": [0.9, 0.999, 1e-8], "bf16": False}
    summary = {"mmtune": {"applied": applied}, "trl": {"applied": dict(applied)},
               "ms-swift": {"applied": {**applied, "adam": [0.9, 0.95, 1e-8]}}}
    assert harness.applied_differences(summary) == ["ms-swift: adam = [0.9, 0.95, 1e-08] (mmtune: [0.9, 0.999, 1e-08])"]


def test_every_contender_says_what_it_could_not_equalise():
    assert set(harness.NOT_EQUALISED) == set(harness.CONTENDERS) == set(contenders.CONTENDERS)


def test_each_run_records_the_library_releases_it_ran_on():
    from importlib.metadata import version

    text = contenders._libraries()
    assert text.split(", ")[:2] == [f"torch {version('torch')}", f"transformers {version('transformers')}"]
    assert [part.split()[0] for part in text.split(", ")] == list(contenders.LIBRARIES)
    # a release that differs from mmtune's shows among the read-back differences
    summary = {"mmtune": {"applied": {"libraries": text}},
               "llamafactory": {"applied": {"libraries": text.replace(version("transformers"), "5.6.0")}}}
    assert harness.applied_differences(summary) == [
        f"llamafactory: libraries = {summary['llamafactory']['applied']['libraries']!r} (mmtune: {text!r})"]
    assert "transformers" in harness.NOT_EQUALISED_ALL
