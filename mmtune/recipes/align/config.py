"""``mmtune align`` configs: which preference objective, its settings, and the run around it.

The objective's names and defaults are TRL's (``trl.DPOConfig`` / ``trl.KTOConfig`` 1.16), so a
value read in a paper or a TRL recipe means the same thing here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mmtune.config import ConfigError, from_dict
from mmtune.recipes.sft import TrainingConfig, ValidationConfig

# method -> the loss types it takes (TRL's spelling) and the default one
DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm")
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")
METHODS = {
    "dpo": DPO_LOSS_TYPES,
    "kto": KTO_LOSS_TYPES,
    "mdpo": ("sigmoid",),  # mDPO's three terms are each a sigmoid (Bradley-Terry) loss
    "grpo": (),
}
# TRL 1.16 has ORPO and SimPO (CPOTrainer's loss_type="simpo") only in trl.experimental, and their
# forward passes input_ids and attention_mask alone: the model never sees the image.
NOT_YET = {"orpo": "trl.experimental.orpo.ORPOTrainer", "simpo": "trl.experimental.cpo.CPOTrainer(loss_type='simpo')"}


@dataclass
class PreferenceSourceConfig:
    """One preference file in a YAML config (read by ``mmtune.data.preferences.read_preferences``)."""

    path: str = field(metadata={"help": "TRL vision preference JSONL, LLaVA-style JSON with chosen/rejected, "
                                        "KTO completion/label records, or an HF dataset dir"})
    root: str | None = field(default=None, metadata={"help": "image folder; default: the file's folder"})
    format: str | None = field(default=None, metadata={"help": "reader name; default: from the file"})


@dataclass
class ObjectiveConfig:
    """The preference objective: method, TRL loss type, beta and the knobs of each loss."""

    method: str = field(default="dpo", metadata={"help": f"one of {', '.join(METHODS)}"})
    loss_type: str | None = field(default=None, metadata={
        "help": "TRL's loss_type for the method (dpo: sigmoid, ipo, hinge, robust, ...; kto: kto, "
                "apo_zero_unpaired); default: the method's first"})
    beta: float = field(default=0.1, metadata={
        "help": "strength of the pull toward the reference (TRL's beta; for ipo the regulariser tau)"})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "robust: the assumed probability a preference label is flipped, in [0, 0.5)"})
    desirable_weight: float = field(default=1.0, metadata={"help": "kto: weight of desirable (label true) records"})
    undesirable_weight: float = field(default=1.0, metadata={"help": "kto: weight of undesirable records"})
    anchor_delta: float = field(default=0.0, metadata={
        "help": "mdpo: the anchor keeps beta * chosen log-ratio above this (the paper's delta, 0)"})
    corruption: str = field(default="crop", metadata={
        "help": "mdpo: how the rejected image m' is made when a pair carries none (crop, mask, noise; "
                "crop keeps 1-20% of the area as mDPO does)"})

    def __post_init__(self) -> None:
        if self.method in NOT_YET:
            raise ConfigError(f"objective.method={self.method!r}: TRL 1.16 has it only as {NOT_YET[self.method]}, "
                              "whose forward never passes the images to the model, so mmtune does not run it; "
                              f"use one of {', '.join(METHODS)}")
        if self.method not in METHODS:
            raise ConfigError(f"objective.method={self.method!r} is unknown; use one of {', '.join(METHODS)}")
        allowed = METHODS[self.method]
        if self.loss_type is None:
            self.loss_type = allowed[0] if allowed else None
        elif self.loss_type not in allowed:
            raise ConfigError(f"objective.loss_type={self.loss_type!r} does not apply to method {self.method}; "
                              f"use one of {', '.join(allowed) or '(none: leave it unset)'}")
        for name in ("beta", "label_smoothing", "desirable_weight", "undesirable_weight", "anchor_delta"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"objective.{name} must be a finite number, got {value!r}")
        if self.beta <= 0:
            raise ConfigError(f"objective.beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"objective.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
            raise ConfigError("objective.desirable_weight and undesirable_weight must be > 0")


@dataclass
class AlignConfig:
    """An alignment run as written in YAML: base checkpoint, preference data, objective, strategy, training."""

    model: str = field(default="", metadata={"help": "local checkpoint directory of the model to align"})
    data: list[PreferenceSourceConfig] = field(default_factory=list, metadata={
        "help": "preference files, concatenated, e.g. [{path: prefs.jsonl}]"})
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    strategy: str = field(default="lora(r=16, alpha=32, groups=llm)", metadata={"help": "see `mmtune strategies`"})
    output_dir: str = field(default="runs/align", metadata={"help": "checkpoints here, the aligned model in final/"})
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(lr=5e-6))
    grpo: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "method grpo only: the keys of mmtune.recipes.align.grpo.GRPOSettings (group size, rewards, "
                "KL beta and its own optimisation settings; training: is not read, strategy and validation are)"})
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("config key model is required: the directory of the checkpoint to align")
        if not self.data:
            raise ConfigError("config key data is required: a list of preference files, e.g. [{path: prefs.jsonl}]")
        if self.grpo and self.objective.method != "grpo":
            raise ConfigError(f"config key grpo is read by objective.method grpo only, not {self.objective.method}")
        if self.objective.method == "grpo":
            self.grpo_settings()  # its keys and values are checked when the config loads

    def grpo_settings(self) -> Any:
        """The ``GRPOSettings`` of a grpo run: the ``grpo:`` keys, with this config's strategy and validation."""
        from mmtune.recipes.align.grpo import GRPOSettings

        shared = sorted({"strategy", "skip_invalid", "max_pixels"} & set(self.grpo))
        if shared:
            raise ConfigError(f"config key grpo.{shared[0]}: set it once for every method, as strategy or "
                              f"validation.{shared[0]}, not under grpo")
        settings = {**self.grpo, "strategy": self.strategy, "skip_invalid": self.validation.skip_invalid,
                    "max_pixels": self.validation.max_pixels}
        try:
            return from_dict(GRPOSettings, settings, "grpo")
        except ValueError as e:
            raise ConfigError(str(e)) from None
