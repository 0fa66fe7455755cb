"""Strategy spec syntax: parsing, canonical round trip, and errors that name what to fix."""

import pytest

from mmtune.strategies import StrategySpec, format_spec, list_strategies, parse_spec
from mmtune.strategies.registry import build_config, resolve


def test_parse_values_and_lists():
    parts = parse_spec("lora(r=16, alpha=32.5, dropout=0.05, groups=llm|projector)+ top(k=2) +last")
    assert parts == [
        StrategySpec("lora", {"r": 16, "alpha": 32.5, "dropout": 0.05, "groups": ("llm", "projector")}),
        StrategySpec("top", {"k": 2}),
        StrategySpec("last", {}),
    ]
    assert parse_spec("x(flag=TRUE, other=false, name=abc)")[0].kwargs == {
        "flag": True,
        "other": False,
        "name": "abc",
    }


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("full", "full"),
        ("last()", "last"),
        ("top( k = 4 )", "top(k=4)"),
        (
            "lora(r=16,alpha=32,groups=llm|vision)+projector",
            "lora(r=16, alpha=32, groups=llm|vision)+projector",
        ),
        ("lora(alpha=16.0, dropout=0.1)", "lora(alpha=16.0, dropout=0.1)"),
        ("norms(groups=vision)", "norms(groups=vision)"),
    ],
)
def test_canonical_round_trip(text, canonical):
    parts = parse_spec(text)
    assert format_spec(parts) == canonical
    assert parse_spec(canonical) == parts


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty strategy spec"),
        ("top(k=2", "unbalanced '('"),
        ("top)k=2(", "unbalanced ')'"),
        ("full++last", "empty part"),
        ("top(2)", "is not key=value"),
        ("top(k=2, k=3)", "given twice"),
        ("1abc", "cannot parse"),
    ],
)
def test_syntax_errors(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(text)


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(KeyError) as e:
        resolve("topp(k=2)")
    assert "unknown strategy 'topp'" in str(e.value) and "top" in str(e.value) and "lora" in str(e.value)


def test_unknown_argument_lists_valid_arguments():
    with pytest.raises(ValueError) as e:
        resolve("lora(rank=8)")
    msg = str(e.value)
    assert "unknown argument(s) rank" in msg
    for arg in ("r (", "alpha", "dropout", "groups"):
        assert arg in msg


@pytest.mark.parametrize(
    "text, message",
    [
        ("top(k=0)", "k must be a positive integer"),
        ("top(k=1.5)", "k must be a positive integer"),
        ("layers(start=3, end=2)", "need 0 <= start < end"),
        ("layers(start=1)", "end"),
        ("lora(r=0)", "r must be a positive integer"),
        ("lora(dropout=1.5)", "dropout must be in"),
        ("lora(groups=llm|eyes)", "unknown group.*'eyes'"),
        ("ia3(targets=k_proj, feedforward=down_proj)", "must be a subset"),
        ("lora+dora", "at most one PEFT strategy"),
        ("adapter+adapter", "adapter given more than once"),
    ],
)
def test_invalid_configs_name_the_option(text, message):
    with pytest.raises(ValueError, match=message):
        resolve(text)


def test_single_list_item_becomes_tuple():
    assert build_config(StrategySpec("lora", {"groups": "vision"})).groups == ("vision",)


def test_resolve_orders_attachers_before_selections():
    assert [s.name for s, _, _ in resolve("projector+top(k=1)+lora").parts] == ["lora", "projector", "top"]
    assert [s.name for s, _, _ in resolve("last+adapter+ia3").parts] == ["ia3", "adapter", "last"]


def test_resolved_strategy_declares_how_it_saves_and_merges():
    resolved = resolve("top(k=1)+projector")
    assert (resolved.spec, resolved.saves, resolved.mergeable) == ("top(k=1)+projector", "full", True)
    assert resolve(resolved) is resolved  # resolved once, passed on as it is
    assert (resolve("lora(r=4)+projector").saves, resolve("lora(r=4)+projector").mergeable) == ("delta", True)
    assert resolve("last+adapter").unmergeable() == ["adapter"]


def test_list_strategies_covers_the_three_paradigms():
    infos = {i.name: i for i in list_strategies()}
    expected = {
        "selective": {
            "full",
            "llm",
            "vision",
            "projector",
            "top",
            "bottom",
            "last",
            "layers",
            "norms",
            "bias",
        },
        "reparameterization": {"lora", "dora", "rslora", "pissa", "vera", "loha"},
        "additive": {"adapter", "prompt", "ia3", "llama_adapter"},
    }
    for paradigm, names in expected.items():
        assert {n for n, i in infos.items() if i.paradigm == paradigm} >= names
    assert all(i.description for i in infos.values())
