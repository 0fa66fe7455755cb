"""Anti-forgetting methods: the registry, spec errors, and each loss term against hand-worked values."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmtune.methods.base import METHODS, LossContext, list_methods, resolve_methods
from mmtune.methods.ewc import diagonal_fisher
from mmtune.methods.lwf import distillation_kl
from mmtune.methods.weights import merge_task_vectors, task_vector, wise_ft


def test_every_method_declares_its_phase_and_lists_by_phase():
    listed = [(e.phase, e.name) for e in list_methods()]
    assert listed == sorted(listed, key=lambda x: (["data", "loss", "posterior"].index(x[0]), x[1]))
    assert {("data", "replay"), ("loss", "ewc"), ("loss", "l2sp"), ("loss", "lwf"), ("posterior", "merge"),
            ("posterior", "wise_ft")} <= set(listed)
    assert METHODS["replay"].needs_seen_data and METHODS["ewc"].needs_seen_data
    assert not METHODS["l2sp"].needs_seen_data


def test_resolve_parses_the_strategy_syntax_and_fills_defaults():
    replay, ewc = resolve_methods(["replay(fraction=0.3)", "ewc"])
    assert (replay.phase, replay.config.fraction, replay.label) == ("data", 0.3, "replay(fraction=0.3)")
    assert (ewc.config.weight, ewc.config.batches) == (100.0, 8)
    assert [m.name for m in resolve_methods("l2sp+wise_ft(alpha=0.2)")] == ["l2sp", "wise_ft"]


@pytest.mark.parametrize("spec, message", [
    ("ewk", r"unknown method 'ewk'; known: cot, ewc, icl, l2sp, lwf, .*replay, tool_use, wise_ft"),
    ("ewc(lam=3)", r"method 'ewc\(lam=3\)': unknown argument\(s\) lam; valid: weight \(lambda"),
    ("replay(fraction=1.0)", r"method 'replay\(fraction=1.0\)': replay fraction must lie in \[0, 1\)"),
    ("l2sp+l2sp(weight=1)", r"l2sp given more than once"),
    ("wise_ft+merge", r"use one posterior method per run"),
    ("merge(method=avg)", r"method 'avg' is unknown; use one of task_arithmetic, ties, dare"),
])
def test_bad_specs_name_the_method_and_the_fix(spec, message):
    with pytest.raises((ValueError, KeyError), match=message):
        resolve_methods(spec)


def _linear() -> nn.Linear:
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
    return layer


def _context(model, batches=()):
    return LossContext(model=model, seen_batches=lambda: iter(batches))


def test_l2sp_penalty_is_weight_times_squared_distance():
    model = _linear()
    (term,) = [m.build() for m in resolve_methods("l2sp(weight=0.5)")]
    term.setup(_context(model))
    with torch.no_grad():
        model.weight += torch.tensor([[3.0, -4.0]])
    assert term.penalty(model, {}, None).item() == pytest.approx(0.5 * (9 + 16))


class _Squared(nn.Module):
    """loss = (w . x - y)^2 for one sample: its gradient is 2 (w.x - y) x, worked out by hand."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0]))

    def forward(self, x, y):
        return type("Out", (), {"loss": ((self.w * x).sum() - y) ** 2})()


def test_ewc_fisher_is_the_mean_squared_gradient_and_scales_the_pull():
    model = _Squared()
    batches = [{"x": torch.tensor([1.0, 0.0]), "y": torch.tensor(0.0)},   # residual 1 -> grad (2, 0)
               {"x": torch.tensor([0.0, 1.0]), "y": torch.tensor(1.0)}]   # residual 1 -> grad (0, 2)
    fisher = diagonal_fisher(model, iter(batches), max_batches=8)
    assert fisher["w"].tolist() == [2.0, 2.0]  # ((2^2 + 0) / 2, (0 + 2^2) / 2)
    assert model.w.grad is None  # estimating the Fisher leaves no gradient behind
    (term,) = [m.build() for m in resolve_methods("ewc(weight=3, batches=1)")]
    term.setup(_context(model, batches))
    assert term.fisher["w"].tolist() == [4.0, 0.0]  # only the first batch
    with torch.no_grad():
        model.w += torch.tensor([1.0, 5.0])
    assert term.penalty(model, {}, None).item() == pytest.approx(0.5 * 3 * (4.0 * 1.0 + 0.0 * 25.0))


def test_ewc_refuses_to_run_without_seen_data():
    (term,) = [m.build() for m in resolve_methods("ewc")]
    with pytest.raises(ValueError, match="ewc needs seen-task data"):
        term.setup(_context(_Squared()))


def test_distillation_kl_against_a_hand_computed_value():
    # one labelled position (t=0 predicts labels[1]); two classes; T = 2
    student = torch.tensor([[[0.0, 0.0], [9.0, 9.0]]])
    teacher = torch.tensor([[[2.0 * math.log(3.0), 0.0], [0.0, 9.0]]])
    labels = torch.tensor([[-100, 1]])
    # teacher at T=2: softmax(log 3, 0) = (3/4, 1/4); student: (1/2, 1/2)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distillation_kl(student, teacher, labels, 2.0).item() == pytest.approx(4 * kl, rel=1e-6)
    assert distillation_kl(teacher, teacher, labels, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    assert distillation_kl(student, teacher, torch.tensor([[-100, -100]]), 2.0).item() == 0.0


def test_lwf_keeps_a_frozen_copy_of_a_plain_model_and_pulls_back_to_it():
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5))

    class Wrapped(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, input_ids, labels=None):
            return type("Out", (), {"logits": self.net(input_ids)})()

    wrapped = Wrapped(model)
    (term,) = [m.build() for m in resolve_methods("lwf(weight=2, temperature=1)")]
    term.setup(_context(wrapped))
    inputs = {"input_ids": torch.tensor([[1, 2, 3]]), "labels": torch.tensor([[-100, 2, 3]])}
    assert term.penalty(wrapped, inputs, wrapped(**inputs)).item() == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        model[1].weight.add_(torch.randn_like(model[1].weight))
    moved = term.penalty(wrapped, inputs, wrapped(**inputs))
    assert moved.item() > 0 and moved.requires_grad
    assert all(not p.requires_grad for p in term.teacher.parameters())


def test_lwf_uses_the_adapters_disabled_model_as_teacher_under_peft():
    from PIL import Image

    from mmtune.models import resolve_groups
    from mmtune.models.tiny import build_tiny
    from mmtune.strategies import apply_strategy

    base_model, processor = build_tiny("llava", seed=0)
    model, _ = apply_strategy(base_model, "lora(r=4)", resolve_groups(base_model))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what color"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "red"}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False)
    inputs = dict(processor(text=[prompt], images=[[Image.new("RGB", (32, 32), "red")]], return_tensors="pt"))
    inputs["labels"] = inputs["input_ids"].clone()
    (term,) = [m.build() for m in resolve_methods("lwf")]
    term.setup(_context(model))
    assert term.teacher is None  # no second copy of the weights
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
        teacher = term._teacher_logits(model, inputs)
        with model.disable_adapter():
            base = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    assert torch.equal(teacher, base)
    assert term.penalty(model, inputs, model(**inputs)).item() > 0


def test_posterior_methods_apply_the_weight_space_maths():
    base = {"w": torch.tensor([0.0, 2.0]), "step": torch.tensor([1])}
    tuned = [{"w": torch.tensor([4.0, 2.0]), "step": torch.tensor([1])},
             {"w": torch.tensor([0.0, 6.0]), "step": torch.tensor([1])}]
    (wise,) = [m.build() for m in resolve_methods("wise_ft(alpha=0.25)")]
    assert wise.runs == "one" and torch.equal(wise.apply(base, tuned[:1])["w"], wise_ft(base, tuned[0], 0.25)["w"])
    assert wise.apply(base, tuned[:1])["w"].tolist() == [1.0, 2.0]
    (merge,) = [m.build() for m in resolve_methods("merge(scale=0.5)")]
    assert merge.runs == "targets"
    expected = merge_task_vectors(base, [task_vector(base, t) for t in tuned], "task_arithmetic", scale=0.5)
    assert merge.apply(base, tuned)["w"].tolist() == expected["w"].tolist() == [2.0, 4.0]
