"""Deep validation: what crashed training at step N (lone surrogates, truncated embedded images,
huge images, non-UTF-8 files) is refused by `data validate` and by training before step 0, named."""
from __future__ import annotations

import argparse
import io
import json

import pytest
from PIL import Image

from mmtune.data import collate, commands
from mmtune.data import validate as v
from mmtune.data.readers import read_records
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.models.tiny import build_tiny

FORMATS = ["json", "jsonl", "parquet", "hf_disk"]


@pytest.fixture(scope="module")
def processor():
    return build_tiny("llava")[1]


def _png(size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _record(rid: str, image, question: str = "What color?") -> dict:
    return {"id": rid, "image": image,
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": "red"}]}


def _write(fmt: str, folder, records: list[dict]):
    """The records in one format; images given as bytes are files for JSON(L), embedded bytes otherwise."""
    if fmt in ("json", "jsonl"):
        for r in records:
            if isinstance(r["image"], bytes):
                (folder / f"{r['id']}.png").write_bytes(r["image"])
                r["image"] = f"{r['id']}.png"
        path = folder / f"d.{fmt}"
        if fmt == "json":
            path.write_text(json.dumps(records))
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path
    for r in records:
        r["image"] = {"bytes": r["image"], "path": None}
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), folder / "d.parquet")
        return folder / "d.parquet"
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"), "image": datasets.Image(),
        "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
    })
    datasets.Dataset.from_list(records, features=features).save_to_disk(str(folder / "ds"))
    return folder / "ds"


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_image_is_named_in_every_reader(fmt, tmp_path, processor):
    good = _png((64, 64))
    path = _write(fmt, tmp_path, [_record("good", good), _record("cut", good[: len(good) // 2])])
    samples = read_records(path)
    report = v.validate_samples(samples, processor=processor)
    assert [(i.sample_id, i.reason) for i in report.issues] == [("cut", v.CORRUPT_IMAGE)]
    assert str(path) in report.issues[0].source
    assert [s.id for s in report.valid_samples] == ["good"]
    # What validation prevents: the training collator fails on this record.
    with pytest.raises(OSError):
        collate.SFTCollator(processor)([samples[1]])


@pytest.mark.parametrize("fmt", ["json", "jsonl"])  # arrow formats cannot store a lone surrogate at all
def test_lone_surrogate_is_named(fmt, tmp_path, processor):
    path = _write(fmt, tmp_path, [_record("good", _png()), _record("surrogate", _png(), "What \ud800 color?")])
    samples = read_records(path)
    report = v.validate_samples(samples)  # no processor needed to see it
    assert [(i.sample_id, i.reason) for i in report.issues] == [("surrogate", v.BAD_TEXT)]
    assert "'\\ud800'" in report.issues[0].detail and "character 5" in report.issues[0].detail
    assert "surrogate" in report.table() and str(path) in report.table()
    with pytest.raises(TypeError, match="TextEncodeInput"):  # the step-5 crash of the issue
        collate.SFTCollator(processor)([samples[1]])


def test_non_string_text_is_named(tmp_path):
    rows = [{"id": "num", "messages": [{"role": "user", "content": [{"type": "text", "text": 7}]},
                                       {"role": "assistant", "content": [{"type": "text", "text": ["a"]}]}]}]
    (tmp_path / "d.jsonl").write_text(json.dumps(rows[0]) + "\n")
    report = v.validate_samples(read_records(tmp_path / "d.jsonl"))
    assert [(i.reason, i.detail) for i in report.issues] == [
        (v.BAD_TEXT, "message 0 part 0: text is int, not a string"),
        (v.BAD_TEXT, "message 1 part 0: text is list, not a string")]
    (tmp_path / "e.jsonl").write_text(json.dumps({"id": "p", "messages": [{"role": "user", "content": ["hi"]}]}))
    with pytest.raises(ValueError, match=r"e.jsonl:1: cannot read record \(id 'p'\): message 0 part 0 is 'hi'"):
        read_records(tmp_path / "e.jsonl")


def test_embedded_images_stay_undecoded_after_validation(tmp_path):
    pngs = [_png() for _ in range(3)]
    path = _write("parquet", tmp_path, [_record(f"r{k}", png) for k, png in enumerate(pngs)])
    samples = read_records(path)
    assert v.validate_samples(samples).ok
    # Decoding happened on copies: the samples still hold only the encoded bytes, and still decode.
    assert all(s.images[0].tile for s in samples)
    assert [s.images[0].convert("RGB").tobytes() for s in samples] == [
        Image.open(io.BytesIO(png)).convert("RGB").tobytes() for png in pngs]


def test_records_the_processor_cannot_encode_are_named(processor, monkeypatch):
    samples = [Sample(f"s{k}", [user_turn(f"question {k}", 0), assistant_turn("a")]) for k in range(40)]
    real_encode = collate._encode

    def encode(proc, texts, images, **kwargs):  # the processor fails on one record's text
        if any("question 33" in t for t in texts):
            raise RuntimeError("cannot encode this")
        return real_encode(proc, texts, images, **kwargs)

    monkeypatch.setattr(collate, "_encode", encode)
    report = v.validate_samples(samples, processor=processor)
    assert [(i.sample_id, i.reason) for i in report.issues] == [("s33", v.ENCODE_FAILED)]
    assert "RuntimeError: cannot encode this" in report.issues[0].detail
    assert len(report.valid_samples) == 39


def test_encoding_in_chunks_gives_the_same_verdicts_as_one_by_one(processor):
    image = Image.new("RGB", (32, 32))
    # 25 tokens with the answer; image tokens end at 18 (see test_data_validate's length test).
    samples = [Sample(f"s{k}", [user_turn("what color"), assistant_turn("red " * (k % 3))], [image])
               for k in range(70)]
    chunked = v.validate_samples(samples, processor=processor, max_length=23)
    alone = [v.validate_samples([s], processor=processor, max_length=23) for s in samples]
    assert [(i.sample_id, i.reason) for i in chunked.issues] == [
        (i.sample_id, i.reason) for r in alone for i in r.issues]
    assert {i.reason for i in chunked.issues} == {v.ANSWER_TRUNCATED, v.EMPTY_ASSISTANT}


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    # 9500 x 9500 = 90.25 MP: over Pillow's warning limit, under its error limit; a 1-bit PNG of ~100 KB.
    Image.new("1", (9500, 9500)).save(tmp_path / "huge.png")
    Image.new("RGB", (2000, 1500)).save(tmp_path / "photo.png")
    samples = [Sample(name, [user_turn("q"), assistant_turn("a")], [str(tmp_path / f"{name}.png")])
               for name in ("huge", "photo")]
    report = v.validate_samples(samples)
    assert [(i.sample_id, i.reason) for i in report.issues] == [("huge", v.IMAGE_TOO_LARGE)]
    assert "9500x9500 = 90.2 MP, over the limit of 40.0 MP" in report.issues[0].detail
    assert "--max-pixels" in report.issues[0].detail
    tight = v.validate_samples(samples, max_pixels=2_999_999)
    assert {i.sample_id for i in tight.issues} == {"huge", "photo"}
    in_memory = Sample("mem", [user_turn("q"), assistant_turn("a")], [Image.new("1", (3000, 1000))])
    assert [i.reason for i in v.validate_samples([in_memory], max_pixels=2_999_999).issues] == [v.IMAGE_TOO_LARGE]
    assert v.validate_samples([in_memory], max_pixels=3_000_000).ok


@pytest.mark.parametrize("bad", [0, -5, 10**9, 2.5])
def test_pixel_limit_option_is_checked(bad):
    with pytest.raises(ValueError, match=r"--max-pixels / validation.max_pixels is .*Pillow's decompression-bomb"):
        v.validate_samples([], max_pixels=bad)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmtune")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_max_pixels_and_model_encoding(tmp_path, capsys):
    from mmtune.models.tiny import save_tiny

    Image.new("RGB", (300, 200)).save(tmp_path / "wide.png")
    path = _write("json", tmp_path, [_record("wide", "wide.png"), _record("s", _png(), "Why \ud800?")])
    assert _run(["data", "validate", str(path), "--max-pixels", "50000", "--json"]) == 1
    issues = json.loads(capsys.readouterr().out)["issues"]
    assert {(i["sample_id"], i["reason"]) for i in issues} == {("wide", v.IMAGE_TOO_LARGE), ("s", v.BAD_TEXT)}
    assert issues[0]["source"] == f"{path}: record 0"
    assert _run(["data", "validate", str(path), "--max-pixels", "60000", "--skip-invalid"]) == 0
    assert "keep 1 (unencodable_text: 1)" in capsys.readouterr().out
    model_dir = save_tiny("llava", tmp_path / "model")
    ok = _write("jsonl", tmp_path, [_record("fine", _png())])
    assert _run(["data", "validate", str(ok), "--model", str(model_dir)]) == 0
    assert capsys.readouterr().out == f"{ok}: all 1 records are valid\n"


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_non_utf8_file_is_named_with_its_line(fmt, tmp_path):
    records = [_record("a", "a.png"), _record("b", "b.png", "Caf\u00e9?")]
    text = json.dumps(records, indent=1, ensure_ascii=False) if fmt == "json" else "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path = tmp_path / f"latin1.{fmt}"
    path.write_bytes(text.encode("latin-1"))
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "Caf" in row)
    with pytest.raises(ValueError, match=rf"^{path}:{line}: byte b'\\xe9' is not UTF-8 .* re-save the file as UTF-8"):
        read_records(path)


def test_training_refuses_them_before_step_0(tmp_path):
    from mmtune.data.mixing import DataSourceConfig, load_sources
    from mmtune.recipes.sft import TrainingConfig, ValidationConfig, train_sft

    good = _png((32, 32))
    embedded = _write("parquet", tmp_path, [_record("p-good", good), _record("p-cut", good[:200])])
    (tmp_path / "text").mkdir()
    text = _write("jsonl", tmp_path / "text", [_record("j-good", good), _record("j-surrogate", good, "\ud800")])
    sources = load_sources([DataSourceConfig(path=str(embedded)), DataSourceConfig(path=str(text))])
    samples = [s for source, _ratio in sources for s in source]
    model, processor = build_tiny("llava")
    training = TrainingConfig(max_steps=1, batch_size=2, save_steps=0, logging_steps=1)
    with pytest.raises(v.DataValidationError) as err:
        train_sft(model, processor, samples, strategy="projector", output_dir=tmp_path / "run", training=training)
    assert "p-cut" in str(err.value) and "j-surrogate" in str(err.value) and "p-good" not in str(err.value)
    assert not (tmp_path / "run").exists()  # nothing was trained or written
    with pytest.raises(ValueError, match="validation.max_pixels"):
        ValidationConfig(max_pixels=0)
