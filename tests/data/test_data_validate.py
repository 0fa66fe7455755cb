"""Validation: every reason detected on the record that has it, and only there."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from mmtune.data import validate as v
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.models.tiny import build_tiny


def _png_bytes(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def root(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.png").write_bytes(_png_bytes())
    (data / "empty.png").write_bytes(b"")
    (data / "corrupt.png").write_bytes(_png_bytes()[:40])  # PNG header, pixel data cut off
    (data / "garbage.png").write_bytes(b"not an image at all")
    (tmp_path / "secret.png").write_bytes(_png_bytes("blue"))
    os.symlink(tmp_path / "secret.png", data / "link.png")
    return data


def _sample(sid: str, images: list, n_parts: int | None = None, answer: str | None = "red") -> Sample:
    messages = [user_turn("what color", n_images=len(images) if n_parts is None else n_parts)]
    if answer is not None:
        messages.append(assistant_turn(answer))
    return Sample(sid, messages, images)


def test_every_reason_names_its_record(root):
    samples = [
        _sample("ok", [str(root / "good.png")]),
        _sample("ok_text", []),
        _sample("ok_memory", [Image.new("RGB", (4, 4))]),
        _sample("missing", [str(root / "nope.png")]),
        _sample("empty", [str(root / "empty.png")]),
        _sample("corrupt", [str(root / "corrupt.png")]),
        _sample("garbage", [str(root / "garbage.png")]),
        _sample("dotdot", [str(root / ".." / "secret.png")]),
        _sample("symlink", [str(root / "link.png")]),
        _sample("count", [str(root / "good.png")], n_parts=2),
        _sample("no_answer", [], answer=None),
        _sample("blank_answer", [], answer="  "),
    ]
    report = v.validate_samples(samples, root=root)
    found = {(i.sample_id, i.reason) for i in report.issues}
    assert found == {
        ("missing", v.MISSING_IMAGE),
        ("empty", v.EMPTY_IMAGE),
        ("corrupt", v.CORRUPT_IMAGE),
        ("garbage", v.CORRUPT_IMAGE),
        ("dotdot", v.ESCAPES_ROOT),
        ("symlink", v.ESCAPES_ROOT),
        ("count", v.IMAGE_COUNT),
        ("no_answer", v.NO_ASSISTANT),
        ("blank_answer", v.EMPTY_ASSISTANT),
    }
    assert [s.id for s in report.valid_samples] == ["ok", "ok_text", "ok_memory"]
    assert report.counts() == {
        v.MISSING_IMAGE: 1, v.EMPTY_IMAGE: 1, v.CORRUPT_IMAGE: 2, v.ESCAPES_ROOT: 2,
        v.IMAGE_COUNT: 1, v.NO_ASSISTANT: 1, v.EMPTY_ASSISTANT: 1,
    }
    assert report.to_dict()["invalid"] == 9 and report.to_dict()["valid"] == 3


def test_root_comes_from_the_reader_when_not_given(root):
    sample = _sample("symlink", [str(root / "link.png")])
    sample.meta["root"] = str(root)
    assert [i.reason for i in v.validate_samples([sample]).issues] == [v.ESCAPES_ROOT]


def test_raise_lists_records_and_the_skip_option(root):
    samples = [_sample(f"m{k}", [str(root / "nope.png")]) for k in range(55)]
    report = v.validate_samples(samples, root=root)
    with pytest.raises(v.DataValidationError) as err:
        report.raise_if_invalid()
    message = str(err.value)
    assert message.startswith("55 of 55 records are invalid")
    assert "m0 " in message and "m49 " in message and "m50 " not in message
    assert "... and 5 more" in message and "--skip-invalid" in message
    v.validate_samples([_sample("ok", [str(root / "good.png")])], root=root).raise_if_invalid()


def test_length_checks_with_the_processor():
    _, processor = build_tiny("llava")
    image = Image.new("RGB", (32, 32))
    # Rendered: <|im_start|> user, 16 image tokens, "what color", <|im_end|>, <|im_start|>
    # assistant, answer, <|im_end|> -> 25 tokens; image tokens end at token 18.
    early_image = _sample("short", [image], answer="red")
    long_answer = _sample("answer_cut", [image], answer="red green blue yellow")
    report = v.validate_samples([early_image, long_answer], processor=processor, max_length=17)
    assert [(i.sample_id, i.reason) for i in report.issues] == [
        ("short", v.TOO_LONG), ("answer_cut", v.TOO_LONG)
    ]
    # At 23 tokens the cut falls after the image tokens but before either answer starts.
    report = v.validate_samples([early_image, long_answer], processor=processor, max_length=23)
    assert [(i.sample_id, i.reason) for i in report.issues] == [
        ("short", v.ANSWER_TRUNCATED), ("answer_cut", v.ANSWER_TRUNCATED)
    ]
    # At 25 the long answer is cut short but still teaches something: both are valid.
    assert v.validate_samples([early_image, long_answer], processor=processor, max_length=25).ok
