"""Contract matrix: for every tiny family x strategy, exactly the expected parameters train.

A new family is a new entry in ``tiny_families()``; a new strategy is one row in ROWS. PiSSA
targets what LoRA targets and its SVD is slow, so it is covered in the behaviour and checkpoint
tests instead.
"""

from __future__ import annotations

import pytest
from torch import nn

from mmtune.strategies import apply_strategy
from mmtune.strategies.targets import LLM_GROUPS, plain_named_parameters


def _layer(g, n):
    i = g.layer_index(n)
    return -1 if i is None else i


def _last_dir(n):
    return n.rsplit(".", 2)[-2] if n.count(".") >= 1 else ""


# spec -> which (plain) parameter names must train, given the family's ModelGroups
ROWS = {
    "full": lambda n, g: True,
    "llm": lambda n, g: g.group_of(n) in LLM_GROUPS,
    "vision": lambda n, g: g.group_of(n) == "vision_encoder",
    "projector": lambda n, g: g.group_of(n) == "projector",
    "top(k=2)": lambda n, g: _layer(g, n) >= g.num_layers - 2,
    "last": lambda n, g: _layer(g, n) == g.num_layers - 1,
    "bottom(k=1)": lambda n, g: _layer(g, n) == 0,
    "layers(start=1, end=2)": lambda n, g: _layer(g, n) == 1,
    "last+projector": lambda n, g: _layer(g, n) == g.num_layers - 1 or g.group_of(n) == "projector",
    "norms": lambda n, g: g.group_of(n) in LLM_GROUPS and "norm" in _last_dir(n),
    "norms(groups=vision)": lambda n, g: g.group_of(n) == "vision_encoder" and "norm" in _last_dir(n),
    "bias(groups=vision|projector)": lambda n, g: (
        n.endswith(".bias") and g.group_of(n) in ("vision_encoder", "projector")
    ),
    "lora": lambda n, g: ".lora_" in n and g.group_of(n) == "language_layers",
    "lora(groups=vision)": lambda n, g: ".lora_" in n and g.group_of(n) == "vision_encoder",
    "lora(groups=llm|lm_head)": lambda n, g: (
        ".lora_" in n and g.group_of(n) in ("language_layers", "lm_head")
    ),
    "lora+projector": lambda n, g: (
        (".lora_" in n and g.group_of(n) == "language_layers")
        or (g.group_of(n) == "projector" and ".lora_" not in n)
    ),
    "dora": lambda n, g: ".lora_" in n and g.group_of(n) == "language_layers",
    "rslora": lambda n, g: ".lora_" in n and g.group_of(n) == "language_layers",
    "loha(r=2)": lambda n, g: ".hada_" in n and g.group_of(n) == "language_layers",
    "vera(r=4)": lambda n, g: ".vera_lambda_" in n and g.group_of(n) == "language_layers",
    "ia3": lambda n, g: ".ia3_l" in n and g.group_of(n) == "language_layers",
    "adapter(bottleneck=4)": lambda n, g: ".mmtune_adapter." in n and g.group_of(n) == "language_layers",
    "adapter(bottleneck=4)+norms": lambda n, g: (
        ".mmtune_adapter." in n or (g.group_of(n) in LLM_GROUPS and "norm" in _last_dir(n))
    ),
    "adapter(bottleneck=2)+ia3": lambda n, g: ".mmtune_adapter." in n or ".ia3_l" in n,
    "prompt(n=3)": lambda n, g: n.startswith("prompt_encoder."),
    "llama_adapter(n=2, layers=1)": lambda n, g: (
        ".mmtune_adaption_prompt." in n and _layer(g, n) == g.num_layers - 1
    ),
}


@pytest.mark.parametrize("spec", list(ROWS))
def test_exactly_the_expected_parameters_train(tiny, family, spec):
    tiny = tiny(family)
    if spec.startswith("llama_adapter") and family.startswith("qwen"):
        pytest.skip("M-RoPE families refuse llama_adapter (tested in test_strategies_behaviour)")
    model, summary = apply_strategy(tiny.model, spec, tiny.groups)
    params = dict(plain_named_parameters(model))
    trainable = {n for n, p in params.items() if p.requires_grad}
    expected = {n for n in params if ROWS[spec](n, tiny.groups)}
    assert expected, f"row {spec!r} expects nothing in {family}: the row is wrong"
    assert trainable == expected, (sorted(trainable - expected)[:5], sorted(expected - trainable)[:5])
    assert summary.trainable_params == sum(params[n].numel() for n in trainable)
    vision_hit = summary.trainable.get("vision_encoder", 0) > 0
    assert vision_hit == ("vision" in spec or spec == "full")


def test_lora_targets_exactly_the_decoder_linears(tiny, family):
    base = tiny(family).model
    tiny = tiny(family)
    model, _ = apply_strategy(tiny.model, "lora(r=2)", tiny.groups)
    wrapped = {n.rsplit(".lora_A", 1)[0] for n, _ in plain_named_parameters(model) if ".lora_A." in n}
    layers = tiny.groups.paths["language_layers"]
    linears = {n for n, m in base.named_modules() if isinstance(m, nn.Linear) and n.startswith(layers + ".")}
    assert wrapped == linears
