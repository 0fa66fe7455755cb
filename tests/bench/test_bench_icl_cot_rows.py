"""ICL, CoT and tool-use tuning as bench rows: ``+icl(shots=k)`` trains on k-shot records and is scored k-shot;
``+cot`` trains on rationale-then-answer records and is scored with the answer read after the rationale;
``+tool_use`` trains on tool-call conversations and is scored through the tool loop."""
import json

import pytest

from mmtune.cli import main
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.methods.base import resolve_methods
from mmtune.world.tasks import get_world_task


def _method(spec: str):
    return resolve_methods([spec])[0].build()


def test_icl_method_turns_each_record_k_shot():
    samples = get_world_task("iconqa").samples("train", 6, seed=0)
    out = _method("icl(shots=2)").apply(samples, [], seed=0)
    assert [s.id for s in out] == [s.id for s in samples]
    for query, shot in zip(samples, out):
        assert len(shot.meta["demonstrations"]) == 2 and query.id not in shot.meta["demonstrations"]
        assert len(shot.images) == 3 and shot.images[-1] is query.images[0]  # the query's image comes last
        assert shot.text_of("assistant")[-1] == query.text_of("assistant")[-1]
    with pytest.raises(ValueError, match="shots must be a whole number >= 1"):
        resolve_methods(["icl(shots=0)"])


def test_cot_method_trains_on_the_scene_rationale_then_the_answer():
    sample = get_world_task("iconqa").samples("train", 1, seed=0)[0]
    answer = sample.text_of("assistant")[-1]
    cot = _method("cot").apply([sample], [], seed=0)[0]
    written = cot.text_of("assistant")[-1]
    assert written.endswith(f"the answer is {answer}.") and len(written) > len(f"the answer is {answer}.") + 10
    assert "single word" not in cot.text_of("user")[-1]  # the direct-answer instruction is dropped
    plain = Sample("r1", [user_turn("How many cats?"), assistant_turn("2")], images=[sample.images[0]])
    with pytest.raises(ValueError, match="record 'r1' has no rationale"):
        _method("cot").apply([plain], [], seed=0)
    given = Sample("r2", plain.messages, plain.images, meta={"rationale": "I see two cats."})
    assert _method("cot").apply([given], [], seed=0)[0].text_of("assistant")[-1] == \
        "I see two cats. So the answer is 2."


def test_tool_use_method_trains_on_calls_results_and_answers():
    samples = get_world_task("iconqa").samples("train", 8, seed=0)
    out = _method("tool_use").apply(samples, [], seed=0)
    assert out and len(out) <= len(samples)  # a question the pixel tools get wrong is left out
    for s in out:
        said = s.text_of("assistant")
        assert said[0].startswith("Count (") and said[-1] == s.meta["answer"]
    with pytest.raises(ValueError, match="no tool planner for world task 'rsvqa'"):
        _method("tool_use").apply(get_world_task("rsvqa").samples("train", 1, seed=0), [], seed=0)


def _tiny_bench(model, out, strategies: str) -> dict:
    """A bench of ``strategies`` on iconqa (seen set vqa) in seconds; its runs by row."""
    sets = [f"model={model}", "targets=[iconqa]", "seen=[vqa]", "n_train=6", "n_test=4", "seeds=[0]",
            "training.max_steps=1", "training.batch_size=2", "eval_batch_size=4", "bootstrap_resamples=100"]
    assert main(["bench", "--out", str(out), "--strategies", strategies, *[a for s in sets for a in ("--set", s)]]) == 0
    return {r["row"]: r for r in json.loads((out / "results.json").read_text())["runs"]}


def test_icl_and_cot_rows_are_scored_as_they_were_tuned(untrained_world_model, tmp_path):
    out = tmp_path / "bench"
    runs = _tiny_bench(untrained_world_model, out, "last+icl(shots=1);last+cot;last+tool_use")
    assert set(runs) == {"last+icl(shots=1)", "last+cot", "last+tool_use"}
    for r in runs.values():  # E against the base's zero-shot score, F on the seen set as usual
        assert r["target_zero_shot"] == json.loads((out / "base.json").read_text())["scores"]["iconqa"]
        assert r["E"] == pytest.approx(r["target_score"] - r["target_zero_shot"])
    icl_dir = out / "evals" / "iconqa__last_icl_shots=1__seed0"
    shots = [json.loads(line) for line in (icl_dir / "world_iconqa_1shot.samples.jsonl").read_text().splitlines()]
    assert len(shots) == 4 and all(s["prompt"].count("<image>") == 2 for s in shots)  # one demonstration + query
    assert (icl_dir / "world_vqa.samples.jsonl").exists()  # seen sets zero-shot
    cot_dir = out / "evals" / "iconqa__last_cot__seed0"
    cot = [json.loads(line) for line in (cot_dir / "world_iconqa_cot.samples.jsonl").read_text().splitlines()]
    assert len(cot) == 4 and all("single word" not in s["prompt"] for s in cot)
    tools_dir = out / "evals" / "iconqa__last_tool_use__seed0"
    steps = [json.loads(line) for line in (tools_dir / "world_iconqa.tools.jsonl").read_text().splitlines()]
    assert steps and {s["id"] for s in steps} <= {s["id"] for s in cot}  # every step traced, per question
    answered = [json.loads(line) for line in (tools_dir / "world_iconqa.samples.jsonl").read_text().splitlines()]
    assert len(answered) == 4 and all(isinstance(a["raw"], str) for a in answered)  # a failure reads as ""
    record = json.loads((out / "runs" / "iconqa__last_tool_use__seed0.json").read_text())
    assert record["per_sample"]["iconqa"] is not None  # so its E has a bootstrap interval
    assert json.loads((out / "results.json").read_text())["summary"]["iconqa"]["last+tool_use"]["E_ci"]


def test_a_quantized_row_is_qlora_beside_plain_lora(untrained_world_model, tmp_path):
    # ``lora+quantized(bits=4)`` loads the base in 4-bit NF4 (bitsandbytes) under the same LoRA: QLoRA as a row.
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes (the qlora extra)")
    from mmtune.bench.rows import parse_row

    row = parse_row("lora(r=4, alpha=8)+quantized(bits=4)")
    assert row.strategy == "lora(r=4, alpha=8)" and row.quantization().bits == 4 and row.trains
    with pytest.raises(ValueError, match="bits must be 4 or 8"):
        parse_row("lora+quantized(bits=3)")
    with pytest.raises(ValueError, match="a posterior method needs full-precision weights"):
        parse_row("lora+quantized(bits=4)+wise_ft(alpha=0.5)")
    out = tmp_path / "bench"
    runs = _tiny_bench(untrained_world_model, out, "lora(r=4, alpha=8);lora(r=4, alpha=8)+quantized(bits=4)")
    assert set(runs) == {"lora(r=4, alpha=8)", "lora(r=4, alpha=8)+quantized(bits=4)"}
    record = json.loads((out / "runs" / "iconqa__lora_r=4_alpha=8_quantized_bits=4__seed0.json").read_text())
    assert record["settings"]["quantized"] == {"bits": 4}
    assert record["trainable_params"] == runs["lora(r=4, alpha=8)"]["trainable_params"]  # the same adapters
