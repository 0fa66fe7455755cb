"""Readers: every format on tiny fixtures written here; placeholders and image paths converted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmtune.data.readers import read_records

USER_IMAGE_FIRST = [{"type": "image"}, {"type": "text", "text": "What is it?"}]


def _png(path: Path, color: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def test_llava_json_string_and_list_images(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    records = [
        {
            "id": "one",
            "image": "imgs/a.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is it?"},
                {"from": "gpt", "value": "A square."},
            ],
            "answer": "square",
        },
        {
            "id": "two",
            "image": ["imgs/a.png", "imgs/b.png"],
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Compare <image> with <image> please"},
                {"from": "gpt", "value": "Same."},
            ],
        },
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(records))
    one, two, three = read_records(path)

    assert one.id == "one"
    assert one.messages == [
        {"role": "user", "content": USER_IMAGE_FIRST},
        {"role": "assistant", "content": [{"type": "text", "text": "A square."}]},
    ]
    assert one.images == [str(tmp_path / "imgs" / "a.png")]
    assert one.meta["answer"] == "square" and one.meta["root"] == str(tmp_path)

    assert [m["role"] for m in two.messages] == ["system", "user", "assistant"]
    assert two.messages[1]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image"},
        {"type": "text", "text": "with"},
        {"type": "image"},
        {"type": "text", "text": "please"},
    ]
    assert two.images == [str(tmp_path / "imgs" / "a.png"), str(tmp_path / "imgs" / "b.png")]

    assert three.id == "train-2" and three.images == []


def test_root_overrides_the_file_folder(tmp_path):
    path = tmp_path / "data" / "x.json"
    path.parent.mkdir()
    path.write_text(json.dumps([{"id": "r", "image": "a.png", "conversations": [{"from": "human", "value": "<image>"}]}]))
    (sample,) = read_records(path, root=tmp_path / "media")
    assert sample.images == [str(tmp_path / "media" / "a.png")]


def test_messages_jsonl_inline_and_listed_images(tmp_path):
    lines = [
        {
            "id": "m1",
            "messages": [
                {"role": "user", "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": "Color?"}]},
                {"role": "assistant", "content": "Red."},
            ],
        },
        {
            "id": "m2",
            "images": ["y.png"],
            "messages": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A dog."}]},
            ],
        },
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    m1, m2 = read_records(path)
    assert m1.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "Color?"}]
    assert m1.messages[1]["content"] == [{"type": "text", "text": "Red."}]
    assert m1.images == [str(tmp_path / "x.png")]
    assert m2.messages[0]["content"] == USER_IMAGE_FIRST
    assert m2.images == [str(tmp_path / "y.png")]
    assert m2.meta["source"] == f"{path}:2"


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "messages": []}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_records(path)


def test_bad_record_names_its_index(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": "fine", "conversations": []}, {"id": "odd", "conversations": [{"from": "bot", "value": ""}]}]))
    with pytest.raises(ValueError, match=r"bad\.json: record 1: .*'odd'.*'bot'"):
        read_records(path)


def _chat_rows(tmp_path: Path) -> dict[str, list]:
    return {
        "id": ["h1", "h2"],
        "images": [[Image.new("RGB", (4, 4), "blue")], []],
        "messages": [
            [
                {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Color?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Blue."}]},
            ],
            [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
            ],
        ],
    }


def test_hf_dataset_saved_to_disk(tmp_path):
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "images": datasets.Sequence(datasets.Image()),
            "messages": [{"role": datasets.Value("string"),
                          "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}],
        }
    )
    datasets.Dataset.from_dict(_chat_rows(tmp_path), features=features).save_to_disk(str(tmp_path / "ds"))
    h1, h2 = read_records(tmp_path / "ds")
    assert h1.id == "h1"
    # Absent struct fields (None) are dropped: the image part is a clean {"type": "image"}.
    assert h1.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "Color?"}]
    assert len(h1.images) == 1 and isinstance(h1.images[0], Image.Image)
    assert h1.images[0].convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    assert h2.images == [] and h2.text_of("assistant") == ["Hello"]


def test_hf_dataset_dict_asks_for_a_split(tmp_path):
    import datasets

    rows = {"id": ["t"], "conversations": [[{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"splits train; pass the folder of one split"):
        read_records(tmp_path / "dd")
    (sample,) = read_records(tmp_path / "dd" / "train")
    assert sample.text_of("assistant") == ["a"]


def test_parquet_llava_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _png(tmp_path / "p.png")
    table = pa.table(
        {
            "id": ["p1"],
            "image": ["p.png"],
            "conversations": [[{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A dot."}]],
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    (sample,) = read_records(tmp_path / "d.parquet")
    assert sample.messages[0]["content"] == USER_IMAGE_FIRST
    assert sample.images == [str(tmp_path / "p.png")]


def test_unknown_suffix_lists_formats(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match="llava_json.*messages_jsonl"):
        read_records(path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_records(tmp_path / "nope.json")
