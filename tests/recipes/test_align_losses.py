"""Each preference loss as ``mmtune align`` runs it, against values worked out by hand on a toy batch.

The trainers are the real ones (TRL's DPO / KTO loss code under mmtune's trainer classes, built
by ``build_trainer`` from an ``ObjectiveConfig``); only the model forwards are replaced by tables
of sequence log-probabilities, so every number below follows from the formulas in the docstrings.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mmtune.config import ConfigError
from mmtune.data.preferences import Preference
from mmtune.data.sample import user_turn
from mmtune.recipes.align.config import AlignConfig, ObjectiveConfig
from mmtune.recipes.align.mdpo import CONDITIONAL, conditional_terms
from mmtune.recipes.align.train import build_trainer
from mmtune.recipes.sft import TrainingConfig
from tests.recipes.conftest import load_plain, make_samples

BETA = 0.5


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


class LogProbTable:
    """A stand-in for a model called with TRL's fused LM head: row r's completion log-probability is
    ``table[input_ids[r, 0]]``, spread evenly over its completion tokens (zero elsewhere, as TRL's head)."""

    def __init__(self, table: dict[int, float]) -> None:
        self.table = table

    def __call__(self, input_ids, labels, **kwargs):
        mask = (labels[:, 1:] != -100).float()
        totals = torch.tensor([self.table[int(i)] for i in input_ids[:, 0]])
        per_token = mask * (totals / mask.sum(dim=1)).unsqueeze(1)
        zeros = torch.zeros_like(per_token)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool(),
                               aux_loss=None)


def _rows(keys: list[int], completion_tokens: list[int], width: int = 8) -> dict[str, torch.Tensor]:
    """``input_ids`` whose first token is the row's key, and a completion mask of the given lengths at the end."""
    input_ids = torch.tensor(keys).unsqueeze(1).repeat(1, width)
    completion = torch.zeros(len(keys), width, dtype=torch.long)
    for r, n in enumerate(completion_tokens):
        completion[r, width - n:] = 1
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "completion_mask": completion}


def _prefs(n: int = 4) -> list[Preference]:
    return [Preference(s.id, [user_turn(s.text_of("user")[0])], s.images, s.text_of("assistant")[0],
                       "the color is black") for s in make_samples(n)]


def _trainer(tiny_dir, tmp_path, **objective):
    training = TrainingConfig(lr=1e-3, max_steps=1, batch_size=2, save_steps=0, logging_steps=1)
    run = build_trainer(*load_plain(tiny_dir), _prefs(), objective=ObjectiveConfig(**objective), strategy="full",
                        output_dir=tmp_path, training=training)
    run.trainer.model.train()
    return run.trainer


# Two pairs: (chosen, rejected) sequence log-probs of the policy and the reference, completion lengths.
POLICY = {1: -3.0, 2: -5.0, 3: -4.0, 4: -2.0}  # keys 1, 2 chosen; 3, 4 rejected
REFERENCE = {1: -3.5, 2: -4.5, 3: -3.0, 4: -2.5}
LENGTHS = [2, 3, 4, 1]


def _pair_parts():
    chosen = [POLICY[k] - REFERENCE[k] for k in (1, 2)]  # 0.5, -0.5
    rejected = [POLICY[k] - REFERENCE[k] for k in (3, 4)]  # -1.0, 0.5
    return chosen, rejected, [c - r for c, r in zip(chosen, rejected)]  # deltas 1.5, -1.0


def _sigmoid_loss() -> float:
    _, _, deltas = _pair_parts()
    return sum(-_log_sigmoid(BETA * d) for d in deltas) / 2


def _ipo_loss() -> float:
    chosen, rejected, _ = _pair_parts()
    per_pair = [(c / nc - r / nr - 1 / (2 * BETA)) ** 2
                for c, r, nc, nr in zip(chosen, rejected, LENGTHS[:2], LENGTHS[2:])]
    return sum(per_pair) / 2  # (0.25 + 0.25 - 1)^2 = 0.25 and (-1/6 - 0.5 - 1)^2 = 25/9


def _hinge_loss() -> float:
    _, _, deltas = _pair_parts()
    return sum(max(0.0, 1 - BETA * d) for d in deltas) / 2  # (0.25 + 1.5) / 2


def _robust_loss(eps: float = 0.1) -> float:
    _, _, deltas = _pair_parts()
    per_pair = [(-(1 - eps) * _log_sigmoid(BETA * d) + eps * _log_sigmoid(-BETA * d)) / (1 - 2 * eps) for d in deltas]
    return sum(per_pair) / 2


@pytest.mark.parametrize(("loss_type", "extra", "expected"), [
    ("sigmoid", {}, _sigmoid_loss()),
    ("ipo", {}, _ipo_loss()),
    ("hinge", {}, _hinge_loss()),
    ("robust", {"label_smoothing": 0.1}, _robust_loss(0.1)),
])
def test_dpo_loss_types_match_their_formulas(tiny_dir, tmp_path, loss_type, extra, expected):
    trainer = _trainer(tiny_dir, tmp_path, method="dpo", loss_type=loss_type, beta=BETA, **extra)
    trainer.ref_model = LogProbTable(REFERENCE)
    loss = trainer.compute_loss(LogProbTable(POLICY), _rows([1, 2, 3, 4], LENGTHS))
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    chosen, rejected, deltas = _pair_parts()
    logged = trainer.pop_step_metrics()
    assert logged["rewards/chosen"] == pytest.approx(BETA * sum(chosen) / 2)
    assert logged["rewards/margins"] == pytest.approx(BETA * sum(deltas) / 2)
    assert logged["rewards/accuracies"] == pytest.approx(0.5)  # the first pair is ranked right, the second not


def test_ipo_hand_value():
    assert _ipo_loss() == pytest.approx((0.25 + 25 / 9) / 2)


def test_kto_loss_matches_its_formula(tiny_dir, tmp_path):
    """KTO (Ethayarajh et al. 2024, eq. 7 as TRL writes it): z = max(0, mean(KL rows' policy - reference)),
    desirable loss 1 - sigmoid(beta (r - z)), undesirable 1 - sigmoid(beta (z - r)), mean over the batch."""
    trainer = _trainer(tiny_dir, tmp_path, method="kto", beta=BETA, desirable_weight=1.0, undesirable_weight=2.0)
    policy = {1: -3.0, 2: -5.0, 3: -4.0, 4: -2.0, 11: -6.0, 12: -6.0, 13: -6.0, 14: -5.0}
    reference = {1: -3.5, 2: -4.5, 3: -3.0, 4: -2.5, 11: -6.5, 12: -6.5, 13: -6.2, 14: -5.2}
    trainer.ref_model = LogProbTable(reference)
    inputs = _rows([1, 2, 3, 4], LENGTHS)
    kl = _rows([11, 12, 13, 14], [2, 2, 2, 2])
    inputs.update({f"KL_{k}": v for k, v in kl.items()})
    inputs["label"] = torch.tensor([True, True, False, False])
    loss = trainer.compute_loss(LogProbTable(policy), inputs)

    z = max(0.0, sum(policy[k] - reference[k] for k in (11, 12, 13, 14)) / 4)  # (0.5 + 0.5 + 0.2 + 0.2) / 4
    ratio = {k: policy[k] - reference[k] for k in (1, 2, 3, 4)}
    desirable = [1 - 1 / (1 + math.exp(-BETA * (ratio[k] - z))) for k in (1, 2)]
    undesirable = [2.0 * (1 - 1 / (1 + math.exp(-BETA * (z - ratio[k])))) for k in (3, 4)]
    assert z == pytest.approx(0.35)
    assert float(loss) == pytest.approx(sum(desirable + undesirable) / 4, abs=1e-6)


def test_mdpo_adds_the_conditional_and_anchor_terms_to_dpo(tiny_dir, tmp_path):
    """mDPO = TRL's sigmoid DPO + L_cond + L_anchor (luka-group/mDPO mdpo_trainer.py sums the three)."""
    trainer = _trainer(tiny_dir, tmp_path, method="mdpo", beta=BETA)
    # conditional rows: chosen on m (keys 1, 2, the same log-probs as in the pair) then on m' (keys 5, 6)
    policy, reference = {**POLICY, 5: -7.0, 6: -4.0}, {**REFERENCE, 5: -6.0, 6: -4.5}
    trainer.ref_model = LogProbTable(reference)
    inputs = _rows([1, 2, 3, 4], LENGTHS)
    inputs.update({CONDITIONAL + k: v for k, v in _rows([1, 2, 5, 6], [2, 3, 2, 3]).items()})
    loss = trainer.compute_loss(LogProbTable(policy), inputs)

    chosen = [0.5, -0.5]  # r(y_w | m) from the tables above
    corrupted = [-1.0, 0.5]  # r(y_w | m')
    conditional = [-_log_sigmoid(BETA * (c - k)) for c, k in zip(chosen, corrupted)]
    anchor = [-_log_sigmoid(BETA * c) for c in chosen]
    assert float(loss) == pytest.approx(_sigmoid_loss() + sum(conditional) / 2 + sum(anchor) / 2, abs=1e-6)
    logged = trainer.pop_step_metrics()
    assert logged["mdpo/conditional"] == pytest.approx(sum(conditional) / 2)
    assert logged["mdpo/anchor"] == pytest.approx(sum(anchor) / 2)


def test_conditional_terms_by_hand():
    conditional, anchor = conditional_terms(torch.tensor([0.0, 2.0]), torch.tensor([0.0, -2.0]), beta=1.0, delta=1.0)
    assert conditional.tolist() == pytest.approx([math.log(2), -_log_sigmoid(4.0)])
    assert anchor.tolist() == pytest.approx([-_log_sigmoid(-1.0), -_log_sigmoid(1.0)])


# ---- the objective's settings ------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "ppo"}, "use one of dpo, kto, mdpo, grpo"),
    ({"method": "orpo"}, "trl.experimental.orpo.ORPOTrainer"),
    ({"method": "simpo"}, "CPOTrainer"),
    ({"method": "dpo", "loss_type": "kto"}, "does not apply to method dpo"),
    ({"method": "kto", "loss_type": "ipo"}, "use one of kto, apo_zero_unpaired"),
    ({"beta": 0.0}, "beta must be > 0"),
    ({"loss_type": "robust", "label_smoothing": 0.5}, "[0, 0.5)"),
])
def test_objective_errors_name_the_key_and_the_choices(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        ObjectiveConfig(**kwargs)


def test_objective_defaults_follow_trl():
    assert ObjectiveConfig().loss_type == "sigmoid" and ObjectiveConfig().beta == 0.1  # trl.DPOConfig's defaults
    assert ObjectiveConfig(method="kto").loss_type == "kto"


def test_grpo_keys_only_with_method_grpo():
    with pytest.raises(ConfigError, match="grpo is read by objective.method grpo only"):
        AlignConfig(model="m", data=[{"path": "p"}], grpo={"num_generations": 4})
