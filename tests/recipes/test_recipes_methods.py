"""Anti-forgetting methods inside train_sft: each phase acts, and misuse is refused with the fix."""
from __future__ import annotations

import pytest
import torch

from mmtune.recipes.sft import TrainingConfig, train_sft
from tests.recipes.conftest import load_plain, make_samples


def _cfg(**kw) -> TrainingConfig:
    base = {"lr": 5e-2, "max_steps": 3, "batch_size": 2, "logging_steps": 1, "save_steps": 0, "seed": 0,
            "warmup_ratio": 0.0}
    return TrainingConfig(**{**base, **kw})


def _seen():
    return [s.__class__(f"seen{i}", s.messages, s.images) for i, s in enumerate(make_samples(6))]


def test_ewc_pulls_back_the_weights_the_seen_data_needs(tiny_dir, samples, tmp_path):
    """EWC leaves weights the seen data does not need free, so the measure is the Fisher-weighted
    distance to the start, sum_i F_i (w_i - w0_i)^2, with F estimated as EWC does."""
    from mmtune.data.collate import SFTCollator
    from mmtune.methods.ewc import diagonal_fisher
    from mmtune.models import resolve_groups
    from mmtune.strategies import apply_strategy

    model, processor = load_plain(tiny_dir)
    model, _ = apply_strategy(model, "projector", resolve_groups(model))
    collate, seen = SFTCollator(processor), _seen()
    fisher = diagonal_fisher(model, iter([collate(seen[:2]), collate(seen[2:4])]), 2)

    def weighted_distance(methods, out):
        model, processor = load_plain(tiny_dir)
        init = {n: p.detach().clone() for n, p in model.named_parameters()}
        result = train_sft(model, processor, samples, strategy="projector", output_dir=out,
                           training=_cfg(max_steps=6), methods=methods, seen_samples=seen)
        return sum(float((fisher[n] * (p.detach() - init[n]).pow(2)).sum())
                   for n, p in result.model.named_parameters() if n in fisher)

    free = weighted_distance([], tmp_path / "free")
    anchored = weighted_distance(["ewc(weight=100, batches=2)"], tmp_path / "ewc")
    assert 0 < anchored < 0.25 * free


def test_lwf_keeps_the_answers_closer_to_the_base(tiny_dir, samples, tmp_path):
    """Measured where LwF acts: the KL to the base's next-token distribution on the response tokens."""
    from mmtune.data.collate import SFTCollator
    from mmtune.methods.lwf import distillation_kl

    def drift(methods, out):
        model, processor = load_plain(tiny_dir)
        batch = SFTCollator(processor)(samples[:4])
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            before = model(**inputs).logits
        result = train_sft(model, processor, samples, strategy="projector", output_dir=out,
                           training=_cfg(max_steps=6), methods=methods)
        result.model.eval()
        with torch.no_grad():
            return float(distillation_kl(result.model(**inputs).logits, before, batch["labels"], 1.0))

    assert drift(["lwf(weight=100, temperature=1)"], tmp_path / "lwf") < 0.5 * drift([], tmp_path / "free")


def test_replay_mixes_seen_samples_into_the_run(tiny_llava, samples, tmp_path):
    model, processor = tiny_llava
    result = train_sft(model, processor, samples, strategy="projector", output_dir=tmp_path,
                       training=_cfg(max_steps=1), methods=["replay(fraction=0.5)"], seen_samples=_seen())
    import json

    meta = json.loads((tmp_path / "final" / "mmtune.json").read_text())
    assert meta["meta"]["num_samples"] == 16 and meta["meta"]["methods"] == ["replay(fraction=0.5)"]
    assert result.losses


@pytest.mark.parametrize("methods, seen, message", [
    (["ewc"], [], "method ewc: needs seen-task samples"),
    (["wise_ft(alpha=0.5)"], [], "wise_ft\\(alpha=0.5\\) acts on finished runs"),
    (["ewc(lam=1)"], [], "unknown argument\\(s\\) lam"),
])
def test_misused_methods_are_refused_before_training(tiny_llava, samples, tmp_path, methods, seen, message):
    model, processor = tiny_llava
    with pytest.raises(ValueError, match=message):
        train_sft(model, processor, samples, strategy="projector", output_dir=tmp_path, training=_cfg(),
                  methods=methods, seen_samples=seen)
    assert not (tmp_path / "final").exists()
