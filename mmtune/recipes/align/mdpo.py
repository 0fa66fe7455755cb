"""mDPO (Wang et al. 2024, arXiv 2406.11839): DPO plus two terms that make the model look at the image.

With the policy's log-ratio r(y | m) = log pi(y | m, q) - log pi_ref(y | m, q) for response y on
image m, and the pair's chosen response y_w, rejected y_l, corrupted image m':

    L_DPO    = -log sigmoid(beta * (r(y_w | m) - r(y_l | m)))       TRL's sigmoid loss, unchanged
    L_cond   = -log sigmoid(beta * (r(y_w | m) - r(y_w | m')))      the image, not the response, is rejected
    L_anchor = -log sigmoid(beta * r(y_w | m) - delta)              the chosen reward stays above delta (0)
    L_mDPO   = L_DPO + L_cond + L_anchor

as luka-group/mDPO ``mdpo_trainer.py`` (commit ec316ce) sums them. m' is the pair's
``meta["image_corruption"]["image"]`` when the data carries one (``mmtune prefs``), else the
pair's first image corrupted on the fly by ``mmtune.data.corrupt`` (mDPO's crop keeps 1-20% of the
area), seeded by the run's seed and the pair's id so every epoch and a resumed run see the same m'.
The conditional terms score y_w on m and m' in one extra forward beside TRL's, so TRL's DPO term
and its metrics stay its own.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from trl.trainer.utils import use_adapter

from mmtune.data.corrupt import corrupt_image
from mmtune.data.preferences import Preference
from mmtune.data.sample import ImageRef, Sample
from mmtune.recipes.align.collate import PairCollator, completion_batch
from mmtune.recipes.align.pairwise import DPOAlignTrainer

CONDITIONAL = "conditional."  # prefix of the batch keys of the [y_w on m; y_w on m'] rows


def corrupted_image(pref: Preference, corruption: str = "crop", seed: int = 0) -> ImageRef:
    """m' of a pair: the corrupted image its data names, else its first image corrupted (seeded by its id)."""
    record = pref.meta.get("image_corruption") or {}
    if record.get("image"):
        path = Path(record["image"])
        return str(path if path.is_absolute() or not pref.root else Path(pref.root) / path)
    if not pref.images:
        raise ValueError(f"preference {pref.id!r} has no image; mDPO's conditional term compares the chosen "
                         "response on the image and on a corrupted copy: drop text-only pairs or use method dpo")
    return corrupt_image(pref.images[0], corruption, seed=seed, key=str(pref.id))[0]


def conditional_terms(chosen_ratio: torch.Tensor, corrupted_ratio: torch.Tensor, beta: float,
                      delta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair L_cond and L_anchor from the log-ratios r(y_w | m) and r(y_w | m') (see the module doc)."""
    conditional = -F.logsigmoid(beta * (chosen_ratio - corrupted_ratio))
    anchor = -F.logsigmoid(beta * chosen_ratio - delta)
    return conditional, anchor


class MDPOCollator(PairCollator):
    """TRL's pair batch, plus ``conditional.*``: the chosen responses on their images, then on m'."""

    def __init__(self, prefs: Sequence[Preference], processor: Any, max_length: int | None = None,
                 corruption: str = "crop", seed: int = 0) -> None:
        super().__init__(prefs, processor, max_length)
        imageless = [p.id for p in self.prefs if not p.images and not (p.meta.get("image_corruption") or {})]
        if imageless:
            raise ValueError(f"mdpo: {len(imageless)} pairs have no image (e.g. {imageless[0]!r}); the conditional "
                             "term needs one: drop text-only pairs or use method dpo")
        self.corruption, self.seed = corruption, seed

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = super().__call__(rows)
        prefs = self.records(rows)
        chosen = [p.sample("chosen") for p in prefs]
        corrupted = [Sample(s.id, s.messages, [corrupted_image(p, self.corruption, self.seed), *s.images[1:]])
                     for p, s in zip(prefs, chosen)]
        conditional = completion_batch(self.collator, chosen + corrupted)
        batch.update({CONDITIONAL + k: v for k, v in conditional.items()})
        return batch


class MDPOTrainer(DPOAlignTrainer):
    """TRL's DPO (sigmoid) loss + mDPO's conditional and anchor terms, logged as ``mdpo/*``."""

    def __init__(self, *args: Any, anchor_delta: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.anchor_delta = anchor_delta

    def _completion_logps(self, model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed log-probability of each row's completion tokens (TRL's fused head, as in its DPO loss)."""
        kwargs = {k: v for k, v in inputs.items() if k != "completion_mask"}
        mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(mask == 0, -100)
        log_probs = model(**kwargs, labels=labels, use_cache=False, fused_lm_head=True).log_probs
        return log_probs[:, -(mask.size(1) - 1):].sum(dim=1)  # prompt tuning prepends virtual positions

    def _reference_logps(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return self._completion_logps(self.ref_model, inputs)
            with use_adapter(self.accelerator.unwrap_model(self.model), adapter_name=None):  # PEFT: the base
                return self._completion_logps(self.model, inputs)

    def _compute_loss(self, model, inputs, return_outputs):
        conditional = {k[len(CONDITIONAL):]: v for k, v in inputs.items() if k.startswith(CONDITIONAL)}
        pair = {k: v for k, v in inputs.items() if not k.startswith(CONDITIONAL)}
        out = super()._compute_loss(model, pair, return_outputs)
        dpo_loss = out[0] if return_outputs else out
        ratios = self._completion_logps(model, conditional) - self._reference_logps(conditional)
        chosen_ratio, corrupted_ratio = ratios.chunk(2, dim=0)
        conditional, anchor = conditional_terms(chosen_ratio, corrupted_ratio, self.beta, self.anchor_delta)
        conditional_loss, anchor_loss = conditional.mean(), anchor.mean()
        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        self._metrics[mode]["mdpo/conditional"].append(gather(conditional_loss.detach()).mean().item())
        self._metrics[mode]["mdpo/anchor"].append(gather(anchor_loss.detach()).mean().item())
        self._metrics[mode]["rewards/corrupted"].append(gather(self.beta * corrupted_ratio.detach()).mean().item())
        loss = dpo_loss + conditional_loss + anchor_loss
        return (loss, out[1]) if return_outputs else loss
