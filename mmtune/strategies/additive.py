"""Additive tuning: new modules train, every existing weight stays frozen.

``adapter`` (Houlsby bottleneck) is hand-written because PEFT has no bottleneck adapter; ``ia3``
and ``prompt`` use PEFT. All start as the identity, so the model's outputs at step 0 equal the
base model's (prompt tuning excepted: extra tokens change what the model reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import IA3Config, PromptTuningConfig, PromptTuningInit, get_peft_model
from torch import nn

from mmtune.models.family import ModelGroups
from mmtune.models.generic import unwrap
from mmtune.strategies.registry import register_strategy
from mmtune.strategies.targets import linear_targets

# Where decoder layers of the supported families keep their feed-forward block.
MLP_ATTRIBUTES = ("mlp", "feed_forward", "ffn")
ADAPTER_ATTRIBUTE = "mmtune_adapter"


class BottleneckAdapter(nn.Module):
    """h + up(act(down(h))) with ``up`` zero-initialised, so it starts as the identity."""

    def __init__(self, hidden_size: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))

    def after_mlp(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the decoder layer's MLP (a bound method, so deepcopy re-binds it)."""
        return self(output)


@dataclass
class AdapterConfig:
    bottleneck: int = field(default=64, metadata={"help": "width of the adapter's bottleneck"})

    def __post_init__(self) -> None:
        if not isinstance(self.bottleneck, int) or isinstance(self.bottleneck, bool) or self.bottleneck < 1:
            raise ValueError(f"bottleneck must be a positive integer, got {self.bottleneck!r}")


@register_strategy(
    "adapter", "additive", "bottleneck adapter after each decoder layer's MLP (Houlsby)", AdapterConfig,
    mergeable=False,
)
def adapter(model: nn.Module, groups: ModelGroups, cfg: AdapterConfig) -> nn.Module:
    # The adapter is a child of the decoder layer and runs as a forward hook on its MLP: base
    # parameter names stay untouched, so the base checkpoint and the group paths still apply.
    layers = groups.module(unwrap(model), "language_layers")
    hidden = _hidden_size(unwrap(model))
    for i, layer in enumerate(layers):
        mlp = next(
            (getattr(layer, a) for a in MLP_ATTRIBUTES if isinstance(getattr(layer, a, None), nn.Module)),
            None,
        )
        if mlp is None:
            raise ValueError(
                f"adapter: decoder layer {i} ({type(layer).__name__}) has none of {MLP_ATTRIBUTES}; "
                "add its MLP attribute name to mmtune.strategies.additive.MLP_ATTRIBUTES"
            )
        ref = next(mlp.parameters())
        block = BottleneckAdapter(hidden, cfg.bottleneck).to(device=ref.device, dtype=ref.dtype)
        layer.add_module(ADAPTER_ATTRIBUTE, block)
        mlp.register_forward_hook(block.after_mlp)
    return model


def _hidden_size(model: nn.Module) -> int:
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return text.hidden_size


@dataclass
class IA3StrategyConfig:
    targets: tuple[str, ...] = field(
        default=("k_proj", "v_proj", "down_proj"),
        metadata={
            "help": "decoder-layer linears rescaled (names end with these); the MLP ones act on inputs"
        },
    )
    feedforward: tuple[str, ...] = field(
        default=("down_proj",), metadata={"help": "which of targets are feed-forward (scale their input)"}
    )

    def __post_init__(self) -> None:
        if not set(self.feedforward) <= set(self.targets):
            raise ValueError(f"feedforward {self.feedforward} must be a subset of targets {self.targets}")


@register_strategy(
    "ia3",
    "additive",
    "learned rescaling of keys, values and FFN inputs (IA3)",
    IA3StrategyConfig,
    uses_peft=True,
)
def ia3(model: nn.Module, groups: ModelGroups, cfg: IA3StrategyConfig) -> nn.Module:
    layers = linear_targets(unwrap(model), groups, ["language_layers"])
    targets = [n for n in layers if n.rsplit(".", 1)[-1] in cfg.targets]
    if not targets:
        raise ValueError(
            f"ia3: no decoder-layer linear is named {cfg.targets}; set ia3(targets=...) to this model's names"
        )
    feedforward = [n for n in targets if n.rsplit(".", 1)[-1] in cfg.feedforward]
    return get_peft_model(
        model, IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type="CAUSAL_LM")
    )


@dataclass
class PromptConfig:
    n: int = field(default=20, metadata={"help": "number of learned virtual tokens prepended to the input"})

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")


@register_strategy(
    "prompt",
    "additive",
    "n learned soft-prompt vectors before the input (prompt tuning)",
    PromptConfig,
    uses_peft=True,
    mergeable=False,
)
def prompt(model: nn.Module, groups: ModelGroups, cfg: PromptConfig) -> nn.Module:
    # PEFT's prompt tuning works end to end on LLaVA under transformers 5: it embeds input_ids
    # itself and the model finds image positions by comparing embeddings, and its generation
    # path extends the attention mask for the virtual tokens with the KV cache on.
    # Virtual tokens start as copies of random vocabulary embeddings: PEFT's default RANDOM init
    # draws N(0, 1), ~50x the scale of a trained embedding table, which wrecked a pre-trained
    # model's loss (3.5 -> 9.8 on the world base) before the first step.
    config = PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=cfg.n, prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB
    )
    peft_model = get_peft_model(model, config)
    _redraw_placeholder_prompts(peft_model, _placeholder_token_ids(model.config))
    return peft_model


def _placeholder_token_ids(config) -> set[int]:
    """Ids of the config's special tokens (``image_token_id``, ``video_token_index``, pad ...)."""
    ids: set[int] = set()
    for cfg in (config, getattr(config, "text_config", None)):
        for key, value in (cfg.to_dict() if cfg is not None else {}).items():
            if key.endswith(("_token_id", "_token_index")) and isinstance(value, int) and value >= 0:
                ids.add(value)
    return ids


def _redraw_placeholder_prompts(peft_model: nn.Module, excluded: set[int]) -> None:
    """Re-draw virtual tokens PEFT sampled from a special token. A copy of the image token's
    embedding is taken for one more image position (the model finds them by comparing embeddings)
    and the forward fails with "image features and image tokens do not match"; with a small
    vocabulary that is a common draw (it broke the world bench's prompt row)."""
    words = peft_model.get_input_embeddings()
    prompt = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight
    allowed = torch.tensor([i for i in range(words.num_embeddings) if i not in excluded])
    with torch.no_grad():
        for row in range(prompt.shape[0]):
            if any(torch.equal(prompt[row], words.weight[i].to(prompt.dtype)) for i in excluded if i < words.num_embeddings):
                pick = allowed[torch.randint(len(allowed), (1,))].item()
                prompt[row] = words.weight[pick].to(prompt.dtype)
