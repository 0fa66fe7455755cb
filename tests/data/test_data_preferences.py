"""Preference data: every format read from fixtures, the round trip, every validation reason named
on its record and field, skip mode, and ``mmtune data validate --preferences``."""
from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmtune.data import commands
from mmtune.data import validate as v
from mmtune.data.preferences import (
    IDENTICAL_RESPONSES,
    Preference,
    check_preferences,
    read_preferences,
    validate_preferences,
    write_preferences,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "preferences"
RED, BLUE = str(FIXTURES / "images" / "red.png"), str(FIXTURES / "images" / "blue.png")


def _user(*parts: dict) -> dict:
    return {"role": "user", "content": list(parts)}


IMAGE = {"type": "image"}


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


@pytest.fixture(scope="module")
def processor():
    from mmtune.world.tokenizer import world_processor

    return world_processor()


def test_trl_conversational():
    one, two = read_preferences(FIXTURES / "trl_conversational.jsonl")
    assert one == Preference("c1", [_user(IMAGE, _text("What color is the square?"))], [RED], "Red.", "Green.")
    assert one.is_paired and one.label is None and one.source.endswith("trl_conversational.jsonl:1")
    assert two.messages == [
        {"role": "system", "content": [_text("Answer briefly.")]},
        _user(_text("Compare"), IMAGE, _text("with"), IMAGE),
    ]
    assert two.images == [RED, BLUE]
    assert (two.chosen, two.rejected) == ("They differ in color.", "They are the same.")


def test_trl_plain_prompt_placeholders_or_one_image_part_per_image():
    one, two = read_preferences(FIXTURES / "trl_plain.jsonl")
    assert one.messages == [_user(IMAGE, _text("What color is it?"))] and one.images == [RED]
    assert two.messages == [_user(IMAGE, IMAGE, _text("Which one is red?"))] and two.images == [RED, BLUE]
    assert (two.chosen, two.rejected) == ("The first.", "The second.")


def test_llava_style_pairs():
    prompt_only, answer_repeated, povid = read_preferences(FIXTURES / "llava_pairs.json")
    assert prompt_only == Preference("l1", [_user(IMAGE, _text("Describe the image."))], [RED],
                                     "A red square.", "A red square next to a cat.")
    # A final answer turn that repeats chosen is the chosen response, not part of the prompt.
    assert answer_repeated.messages == [_user(IMAGE, _text("Describe the image."))]
    assert (answer_repeated.chosen, answer_repeated.rejected) == ("A blue square.", "A blue square and a dog.")
    # POVID's trainer format: two conversations sharing the prompt, each ending with its answer.
    assert povid == Preference("l3", [_user(IMAGE, _text("What is shown?"))], [BLUE], "A blue square.", "A blue circle.")


def test_rlaif_v_rows_keep_their_other_fields_in_meta():
    (pref,) = read_preferences(FIXTURES / "rlaif_v.jsonl")
    assert pref.id == "rv-0"  # RLAIF-V's idx
    assert pref.messages == [_user(IMAGE, _text("What is in the image?"))] and pref.images == [RED]
    assert (pref.chosen, pref.rejected) == ("A red square.", "A red square on a table.")
    assert pref.meta == {"ds_name": "RLAIF-V", "origin_dataset": "world",
                         "origin_split": '{"type": "detailed description"}', "image_path": "red.png"}


def test_rlaif_v_parquet_with_embedded_image_bytes(tmp_path):
    # RLAIF-V ships parquet whose image column holds {"bytes", "path"}.
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(buffer, format="PNG")
    table = pa.Table.from_pylist([{"idx": "rv-1", "image": {"bytes": buffer.getvalue(), "path": "x.png"},
                                   "question": "Color?", "chosen": "Green.", "rejected": "Red."}])
    pq.write_table(table, tmp_path / "rlaif.parquet")
    (pref,) = read_preferences(tmp_path / "rlaif.parquet")
    assert pref.id == "rv-1" and pref.images[0].convert("RGB").getpixel((0, 0)) == (0, 128, 0)
    assert check_preferences([pref]).ok


def test_kto_unpaired_plain_and_conversational():
    good, bad = read_preferences(FIXTURES / "kto.jsonl")
    assert good == Preference("k1", [_user(IMAGE, _text("What color?"))], [RED], "Red.", None, True)
    assert bad.messages == good.messages and (bad.chosen, bad.label) == ("Blue.", False)
    assert not good.is_paired and good.sides == ("chosen",) and good.field_name("chosen") == "completion"
    assert good.sample().messages[-1] == {"role": "assistant", "content": [_text("Red.")]}
    assert good.sample().meta["label"] is True
    with pytest.raises(ValueError, match="KTO record"):
        good.sample("rejected")


def test_sample_is_the_prompt_with_that_response():
    (pref,) = read_preferences(FIXTURES / "trl_plain.jsonl")[:1]
    chosen, rejected = pref.sample("chosen"), pref.sample("rejected")
    assert chosen.messages[:-1] == rejected.messages[:-1] == pref.messages
    assert chosen.text_of("assistant") == ["Red."] and rejected.text_of("assistant") == ["Blue."]
    assert chosen.images == [RED] and chosen.meta["root"] == str(FIXTURES)


def test_hf_dataset_folder_with_image_feature(tmp_path):
    import datasets

    message = [{"role": datasets.Value("string"),
                "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}]
    features = datasets.Features({"images": datasets.Sequence(datasets.Image()), "prompt": message,
                                  "chosen": message, "rejected": message})
    rows = {
        "images": [[Image.new("RGB", (8, 8), "blue")]],
        "prompt": [[{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Color?"}]}]],
        "chosen": [[{"role": "assistant", "content": [{"type": "text", "text": "Blue."}]}]],
        "rejected": [[{"role": "assistant", "content": [{"type": "text", "text": "Red."}]}]],
    }
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    (pref,) = read_preferences(tmp_path / "ds")
    assert pref.id == "ds-0" and pref.messages == [_user(IMAGE, _text("Color?"))]
    assert pref.images[0].convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    assert (pref.chosen, pref.rejected) == ("Blue.", "Red.")


def test_round_trip_through_trl_jsonl(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURES, data)
    prefs = [p for name in ("trl_conversational.jsonl", "trl_plain.jsonl", "llava_pairs.json", "rlaif_v.jsonl",
                            "kto.jsonl") for p in read_preferences(data / name)]
    prefs[0].meta["construction"] = {"method": "injected", "injected": ["cat"]}
    out = write_preferences(data / "out.jsonl", prefs)
    assert read_preferences(out) == prefs
    first, *_, kto = [json.loads(line) for line in out.read_text().splitlines()]
    # TRL's vision preference columns; images relative to the file's folder.
    assert first == {"id": "c1", "images": ["images/red.png"], "prompt": prefs[0].messages,
                     "chosen": [{"role": "assistant", "content": [_text("Red.")]}],
                     "rejected": [{"role": "assistant", "content": [_text("Green.")]}],
                     "meta": {"construction": {"method": "injected", "injected": ["cat"]}}}
    assert kto["completion"] == [{"role": "assistant", "content": [_text("Blue.")]}] and kto["label"] is False
    assert "rejected" not in kto


def test_images_outside_the_folder_are_written_absolute(tmp_path):
    (pref,) = read_preferences(FIXTURES / "rlaif_v.jsonl")
    out = write_preferences(tmp_path / "out.jsonl", [pref])
    assert json.loads(out.read_text())["images"] == [RED]
    assert read_preferences(out, root=FIXTURES) == [pref]


def test_in_memory_images_saved_as_png_once(tmp_path):
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    prefs = [Preference(f"m{k}", [_user(IMAGE, _text("Color?"))], [image], "Dark.", "Light.") for k in range(2)]
    out = write_preferences(tmp_path / "built.jsonl", prefs)
    saved = list((tmp_path / "built_images").iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".png"  # both records share one file
    back = read_preferences(out)
    assert [p.images for p in back] == [[str(saved[0])]] * 2
    assert Image.open(back[0].images[0]).getpixel((0, 0)) == (10, 20, 30)
    assert [(p.id, p.chosen, p.rejected) for p in back] == [("m0", "Dark.", "Light."), ("m1", "Dark.", "Light.")]


def test_meta_that_json_cannot_hold_names_the_record(tmp_path):
    pref = Preference("odd", [_user(_text("Hi"))], [], "A.", "B.", meta={"image": Image.new("RGB", (2, 2))})
    with pytest.raises(ValueError, match="preference 'odd' cannot be written as JSON"):
        write_preferences(tmp_path / "out.jsonl", [pref])


@pytest.mark.parametrize("row, message", [
    ({"id": "r", "prompt": "Hi", "chosen": "A."}, "no 'rejected' field"),
    ({"id": "r", "prompt": "Hi", "completion": "A.", "label": "yes"}, "label is 'yes'; use true"),
    ({"id": "r", "prompt": "Hi", "chosen": [{"role": "user", "content": "A."}], "rejected": "B."},
     "chosen is .*give a string or a list holding one assistant message"),
    ({"id": "r", "prompt": 3, "chosen": "A.", "rejected": "B."}, "prompt is int"),
    ({"id": "r", "text": "Hi"}, "a preference record needs 'prompt'"),
    ({"id": "r", "prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A."}],
      "chosen": "A.", "rejected": "B."}, "ends with assistant"),
    ({"id": "r", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "C."}],
      "chosen": "A.", "rejected": "B."}, "ends with an answer that is not 'chosen'"),
    ({"id": "r", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "A."}],
      "rejected_conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "B."}]},
     "must share the prompt turns"),
])
def test_unreadable_records_name_file_line_and_id(tmp_path, row, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "fine", "prompt": "Hi", "chosen": "A.", "rejected": "B."}) + "\n" + json.dumps(row))
    with pytest.raises(ValueError, match=rf"p.jsonl:2: cannot read preference record \(id 'r'\): .*{message}"):
        read_preferences(path)


def _invalid_file(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    shutil.copy(RED, data / "images" / "red.png")
    (data / "images" / "empty.png").write_bytes(b"")
    (data / "images" / "corrupt.png").write_bytes(Path(RED).read_bytes()[:30])
    shutil.copy(RED, tmp_path / "outside.png")

    def pair(rid, image="images/red.png", prompt="<image>What color?", chosen="Red.", rejected="Blue."):
        return {"id": rid, "images": [image] if image else [], "prompt": prompt, "chosen": chosen, "rejected": rejected}

    rows = [
        pair("ok"),
        pair("missing", image="images/nope.png"),
        pair("empty_file", image="images/empty.png"),
        pair("corrupt", image="images/corrupt.png"),
        pair("escapes", image="../outside.png"),
        pair("count", prompt="<image><image>What color?"),
        pair("surrogate", rejected="Bl\ud800ue."),
        pair("blank_chosen", chosen="  \n"),
        pair("blank_rejected", rejected=""),
        pair("same", chosen="Red.", rejected=" Red. "),
        {"id": "kto_blank", "images": ["images/red.png"], "prompt": "<image>What color?", "completion": " ",
         "label": True},
        {"id": "kto_ok", "images": ["images/red.png"], "prompt": "<image>What color?", "completion": "Red.",
         "label": False},
    ]
    path = data / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_reason_names_its_record_and_field(tmp_path):
    prefs = read_preferences(_invalid_file(tmp_path))
    report = check_preferences(prefs)
    found = {(i.sample_id, i.reason, i.detail.split(":")[0]) for i in report.issues}
    assert found == {
        ("missing", v.MISSING_IMAGE, "images"),
        ("empty_file", v.EMPTY_IMAGE, "images"),
        ("corrupt", v.CORRUPT_IMAGE, "images"),
        ("escapes", v.ESCAPES_ROOT, "images"),
        ("count", v.IMAGE_COUNT, "prompt"),
        ("surrogate", v.BAD_TEXT, "rejected"),
        ("blank_chosen", v.EMPTY_ASSISTANT, "chosen is empty; give the response, or drop the record"),
        ("blank_rejected", v.EMPTY_ASSISTANT, "rejected is empty; give the response, or drop the record"),
        ("same", IDENTICAL_RESPONSES, "chosen and rejected are the same text (whitespace aside); a pair must differ"),
        ("kto_blank", v.EMPTY_ASSISTANT, "completion is empty; give the response, or drop the record"),
    }
    by_id = {i.sample_id: i for i in report.issues}
    assert by_id["missing"].source.endswith("prefs.jsonl:2") and by_id["kto_blank"].source.endswith("prefs.jsonl:11")
    assert [p.id for p in report.valid_samples] == ["ok", "kto_ok"]
    assert report.counts() == {v.MISSING_IMAGE: 1, v.EMPTY_IMAGE: 1, v.CORRUPT_IMAGE: 1, v.ESCAPES_ROOT: 1,
                               v.IMAGE_COUNT: 1, v.BAD_TEXT: 1, v.EMPTY_ASSISTANT: 3, IDENTICAL_RESPONSES: 1}


def test_an_absolute_path_outside_the_root_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "p.jsonl"
    path.write_text(json.dumps({"id": "abs", "images": [RED], "prompt": "<image>Hi", "chosen": "A.", "rejected": "B."}))
    (issue,) = check_preferences(read_preferences(path)).issues
    assert (issue.sample_id, issue.reason) == ("abs", v.ESCAPES_ROOT) and f"outside {tmp_path / 'data'}" in issue.detail
    assert check_preferences(read_preferences(path, root=FIXTURES)).ok


def test_lengths_measured_with_the_processor_per_response(processor):
    prefs = read_preferences(FIXTURES / "trl_conversational.jsonl")[:1] + read_preferences(FIXTURES / "kto.jsonl")[:1]
    assert check_preferences(prefs, processor=processor).ok
    # With the world processor: 16 image tokens end at token 19 of both records' 34 and 31 tokens.
    cut_image = check_preferences(prefs, processor=processor, max_length=10)
    assert [(i.sample_id, i.reason, i.detail) for i in cut_image.issues] == [
        ("c1", v.TOO_LONG, "chosen: 34 tokens with image tokens up to 19, over max_length=10"),
        ("c1", v.TOO_LONG, "rejected: 34 tokens with image tokens up to 19, over max_length=10"),
        ("k1", v.TOO_LONG, "completion: 31 tokens with image tokens up to 19, over max_length=10"),
    ]
    cut_answer = check_preferences(prefs, processor=processor, max_length=25)
    assert {(i.sample_id, i.reason) for i in cut_answer.issues} == {("c1", v.ANSWER_TRUNCATED), ("k1", v.ANSWER_TRUNCATED)}
    assert check_preferences(prefs, processor=processor, max_length=40).ok


def test_validate_raises_naming_records_or_skips_them(tmp_path, caplog):
    prefs = read_preferences(_invalid_file(tmp_path))
    with pytest.raises(v.DataValidationError, match=r"(?s)10 of 12 records are invalid.*blank_rejected.*--skip-invalid"):
        validate_preferences(prefs, None)
    with caplog.at_level(logging.WARNING, logger="mmtune.data.preferences"):
        kept = validate_preferences(prefs, None, skip_invalid=True)
    assert [p.id for p in kept] == ["ok", "kto_ok"]
    assert "skipping 10 of 12 preference records (corrupt_image: 1, empty_assistant_turn: 3" in caplog.text
    assert "identical_responses: 1" in caplog.text and "surrogate" in caplog.text


def test_max_pixels_is_checked():
    with pytest.raises(ValueError, match="--max-pixels"):
        check_preferences([], max_pixels=0)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmtune")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_validate_preferences_exit_codes(tmp_path, capsys):
    bad = str(_invalid_file(tmp_path))
    assert _run(["data", "validate", bad, "--preferences"]) == 1
    out = capsys.readouterr().out
    assert "10 of 12 records are invalid" in out and "same  " in out and "identical_responses" in out
    assert _run(["data", "validate", bad, "--preferences", "--skip-invalid"]) == 0
    assert "keep 2 (" in capsys.readouterr().out
    assert _run(["data", "validate", bad, "--preferences", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["total"], report["valid"], report["invalid"]) == (12, 2, 10)
    assert _run(["data", "validate", str(FIXTURES / "kto.jsonl"), "--preferences"]) == 0
    assert "all 2 records are valid" in capsys.readouterr().out


def test_cli_validate_preferences_lengths_with_a_saved_model(tmp_path, capsys):
    from mmtune.models.tiny import save_tiny

    model_dir = save_tiny("llava", tmp_path / "model")
    argv = ["data", "validate", str(FIXTURES / "trl_plain.jsonl"), "--preferences", "--model", str(model_dir)]
    assert _run(argv) == 0
    capsys.readouterr()
    assert _run(argv + ["--max-length", "10", "--json"]) == 1
    issues = json.loads(capsys.readouterr().out)["issues"]
    assert {(i["sample_id"], i["reason"], i["detail"].split(":")[0]) for i in issues} == {
        (pid, v.TOO_LONG, side) for pid in ("p1", "p2") for side in ("chosen", "rejected")}
