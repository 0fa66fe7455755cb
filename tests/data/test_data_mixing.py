"""Mixing by ratio (exact counts, replacement only when needed, seeded) and template pools."""
from __future__ import annotations

import json
import random

import pytest

from mmtune.config import from_dict
from mmtune.data.mixing import DataSourceConfig, load_sources, mix_sources
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.data.templates import CHOICE_SUFFIX, SHORT_ANSWER_SUFFIX, apply_template, get_pool


def _source(prefix: str, n: int, images: int = 1) -> list[Sample]:
    return [
        Sample(f"{prefix}{i}", [user_turn("q", n_images=images), assistant_turn("a")], ["x.png"] * images)
        for i in range(n)
    ]


def test_ratio_counts_are_exact():
    target, general = _source("t", 100), _source("g", 100, images=0)  # text-only mixes in too
    mixed = mix_sources([(target, 3.0), (general, 1.0)], n=40, seed=0)
    assert len(mixed) == 40
    assert sum(s.id.startswith("t") for s in mixed) == 30
    assert sum(s.id.startswith("g") for s in mixed) == 10
    assert len({s.id for s in mixed}) == 40, "no repeats when every source is big enough"
    assert [(st.drawn, st.with_replacement) for st in mixed.stats] == [(30, False), (10, False)]


def test_largest_remainder_rounding():
    mixed = mix_sources([(_source("a", 10), 1), (_source("b", 10), 1), (_source("c", 10), 1)], n=10, seed=1)
    # 10/3 each: 3.33 -> 3, 3, 3 and the one leftover goes to the first largest remainder.
    assert [st.drawn for st in mixed.stats] == [4, 3, 3]


def test_small_source_is_repeated_and_says_so():
    small = _source("s", 3)
    mixed = mix_sources([(small, 1.0), (_source("b", 50), 1.0)], n=20, seed=0)
    from_small = [s.id for s in mixed if s.id.startswith("s")]
    assert len(from_small) == 10
    # Every sample three times before any a fourth: 10 = 3 * 3 + 1.
    assert sorted(from_small.count(i) for i in ("s0", "s1", "s2")) == [3, 3, 4]
    assert mixed.stats[0].with_replacement and not mixed.stats[1].with_replacement


def test_default_n_uses_all_data_without_repeats():
    mixed = mix_sources([(_source("a", 10), 1.0), (_source("b", 30), 1.0)], seed=0)
    assert len(mixed) == 20 and not any(st.with_replacement for st in mixed.stats)


def test_deterministic_per_seed():
    sources = [(_source("a", 20), 1.0), (_source("b", 20), 2.0)]
    ids = lambda seed: [s.id for s in mix_sources(sources, n=15, seed=seed)]  # noqa: E731
    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_bad_sources_are_named():
    with pytest.raises(ValueError, match="source 1 has ratio 1.0 but no samples"):
        mix_sources([(_source("a", 2), 1.0), ([], 1.0)], n=2)
    with pytest.raises(ValueError, match="source 0 has ratio -1"):
        mix_sources([(_source("a", 2), -1)], n=2)


def test_source_configs_from_yaml_dict(tmp_path):
    rows = [{"id": f"r{i}", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]} for i in range(10)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    config = from_dict(DataSourceConfig, {"path": str(tmp_path / "d.json"), "ratio": 2, "limit": 4})
    ((samples, ratio),) = load_sources([config], seed=0)
    assert ratio == 2.0 and len(samples) == 4
    assert [s.id for s in samples] == sorted((s.id for s in samples), key=lambda i: int(i[1:])), "file order kept"
    assert [s.id for s in load_sources([config], seed=0)[0][0]] == [s.id for s in samples]


def test_templates_are_seeded_and_suffixed():
    a = apply_template("vqa_short", "What color is it?", 7)
    assert a == apply_template("vqa_short", "What color is it?", random.Random(7))
    assert a.endswith("\n" + SHORT_ANSWER_SUFFIX) and "What color is it?" in a
    wordings = {apply_template("vqa_short", "Q?", seed).split("\n")[0] for seed in range(50)}
    assert len(wordings) > 1 and wordings <= {t.format(question="Q?") for t in get_pool("vqa_short").templates}


def test_multiple_choice_letters_and_caption():
    text = apply_template("multiple_choice", "Which shape?", 0, choices=["circle", "square"])
    assert text.split("\n")[-3:] == ["A. circle", "B. square", CHOICE_SUFFIX]
    assert apply_template("caption", rng=1) in get_pool("caption").templates
    with pytest.raises(KeyError, match="unknown template pool 'nope'; known: caption"):
        apply_template("nope", "q")
