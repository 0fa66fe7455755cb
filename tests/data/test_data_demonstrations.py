"""ICL tuning data: single-turn records turned k-shot from their own source, as a config option."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from mmtune.config import ConfigError, from_dict
from mmtune.data.collate import IGNORE_INDEX, SFTCollator
from mmtune.data.demonstrations import demonstration_answer, with_demonstrations
from mmtune.data.mixing import DataSourceConfig, load_sources
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.models.tiny import build_tiny

WORDS = ["one", "two", "three", "four", "five", "six"]


def _records() -> list[Sample]:
    return [Sample(f"r{i}", [user_turn(f"how many {w}"), assistant_turn(w)], [Image.new("RGB", (32, 32), (40 * i, 0, 0))],
                   {"answer": w}) for i, w in enumerate(WORDS)]


def test_each_record_becomes_k_shot_from_the_same_source():
    records = _records()
    by_id = {r.id: r for r in records}
    shot = with_demonstrations(records, 2, seed=0)
    assert [s.id for s in shot] == [r.id for r in records]
    for s, r in zip(shot, records):
        demos = s.meta["demonstrations"]
        assert len(demos) == 2 and r.id not in demos and set(demos) <= set(by_id)
        assert s.images == [by_id[d].images[0] for d in demos] + r.images
        assert s.num_image_parts == len(s.images) == 3
        assert [m["role"] for m in s.messages] == ["user", "assistant"] * 3
        assert s.text_of("assistant") == [by_id[d].meta["answer"] for d in demos] + [r.meta["answer"]]
    assert with_demonstrations(records, 2, seed=0) == shot
    assert with_demonstrations(records, 0) == records


def test_k_shot_records_train_on_every_answer():
    """Loss falls on each demonstration's answer as well as the record's own (the collator labels every
    assistant turn): each answer is learned from the demonstrations before it."""
    _, processor = build_tiny("llava")
    shot = with_demonstrations(_records(), 2, seed=1)[0]
    batch = SFTCollator(processor)([shot])
    labelled = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
    words = [w for w in processor.tokenizer.convert_ids_to_tokens(labelled.tolist()) if w in WORDS]
    assert words == shot.text_of("assistant")


def test_data_source_option_icl_shots(tmp_path):
    rows = [{"id": f"r{i}", "image": "x.png", "conversations": [{"from": "human", "value": f"<image>\nq {w}"},
                                                                {"from": "gpt", "value": w}]}
            for i, w in enumerate(WORDS)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    config = from_dict(DataSourceConfig, {"path": str(tmp_path / "d.json"), "icl_shots": 3, "icl_select": "balanced"})
    ((samples, _),) = load_sources([config], seed=0)
    assert len(samples) == 6
    for s in samples:
        assert len(s.meta["demonstrations"]) == 3 and s.num_image_parts == len(s.images) == 4
        assert len({demonstration_answer(Sample("x", [m])) for m in s.messages if m["role"] == "assistant"}) == 4
    with pytest.raises(ConfigError, match="icl_select 'near' is not one of random, balanced, nearest"):
        from_dict(DataSourceConfig, {"path": "d.json", "icl_shots": 2, "icl_select": "near"})
    with pytest.raises(ConfigError, match="icl_shots must be >= 0"):
        from_dict(DataSourceConfig, {"path": "d.json", "icl_shots": -1})
