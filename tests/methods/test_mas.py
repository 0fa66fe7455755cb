"""MAS: importance from the output norm's gradient on seen inputs, worked out by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mmtune.methods.base import LossContext, resolve_methods
from mmtune.methods.mas import output_norm


class _Linear(nn.Module):
    """logits = x @ W^T for a one-position 'sequence' whose next token is labelled."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))

    def forward(self, x, labels):
        logits = torch.stack([x @ self.w.T, torch.zeros(2)])[None]  # (1, 2 positions, 2 classes)
        return type("Out", (), {"logits": logits})()


def test_output_norm_reads_the_labelled_positions():
    logits = torch.tensor([[[3.0, 4.0], [9.0, 9.0]]])
    assert output_norm(type("O", (), {"logits": logits})(), {"labels": torch.tensor([[-100, 1]])}).item() == 25.0


def test_mas_importance_and_penalty_by_hand():
    model = _Linear()
    # x = (1, 1): logits (1, 2), ||.||^2 = w00^2 + w11^2 + (w01 + w10 ... = 0) -> d/dw = 2 w x_j
    batches = [{"x": torch.tensor([1.0, 1.0]), "labels": torch.tensor([[-100, 0]])}]
    (term,) = [m.build() for m in resolve_methods("mas(weight=3, batches=1)")]
    term.setup(LossContext(model, lambda: iter(batches)))
    # d(l0^2 + l1^2)/dW = 2 * logits[:, None] * x[None, :] = [[2, 2], [4, 4]]
    assert term.importance["w"].tolist() == [[2.0, 2.0], [4.0, 4.0]]
    with torch.no_grad():
        model.w += torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    assert term.penalty(model, {}, None).item() == pytest.approx(3 * (2.0 * 1 + 4.0 * 1))


def test_mas_is_listed_and_needs_seen_data():
    (method,) = resolve_methods("mas")
    assert (method.phase, method.entry.needs_seen_data, method.config.weight) == ("loss", True, 1.0)
    with pytest.raises(ValueError, match="mas needs seen-task data"):
        method.build().setup(LossContext(_Linear(), lambda: iter(())))
