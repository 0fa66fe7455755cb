"""Group resolution: registered families, generic detection, PEFT wrappers, clear errors."""
from __future__ import annotations

import pytest
import torch
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
)

from mmtune.models import GROUPS, GroupNotFoundError, families, resolve_groups
from mmtune.models.generic import detect_family
from mmtune.models.tiny import build_tiny

from .conftest import tiny_model

# A parameter that must land in each group, by its leaf name under the group's module.
_MEMBER = {
    "vision_encoder": lambda groups, name: name.startswith(groups.paths["vision_encoder"] + ".")
    and not name.startswith(groups.paths["projector"] + "."),
    "projector": lambda groups, name: name.startswith(groups.paths["projector"] + "."),
    "embeddings": lambda groups, name: name.startswith(groups.paths["embeddings"] + "."),
    "language_layers": lambda groups, name: name.startswith(groups.paths["language_layers"] + ".1."),
    "language_norm": lambda groups, name: name.startswith(groups.paths["language_norm"] + "."),
}


def test_every_builtin_family_is_registered_with_a_box_format():
    fams = families()
    assert {"llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3", "paligemma"} <= set(fams)
    assert fams["qwen2_vl"].box_format == "norm1000" and fams["qwen2_5_vl"].box_format == "resized_pixel"
    assert fams["llava"].box_format == fams["idefics3"].box_format == "norm1"


def test_resolve_groups_finds_every_group(tiny, family):
    model, _ = tiny
    groups = resolve_groups(model)
    assert groups.family.name == family
    assert groups.num_layers == model.config.get_text_config().num_hidden_layers == 2
    for group in GROUPS:
        assert groups.module(model, group) is model.get_submodule(groups.paths[group])


def test_group_of_maps_a_parameter_of_each_group(tiny):
    model, _ = tiny
    groups = resolve_groups(model)
    names = [n for n, _ in model.named_parameters()]
    for group, is_member in _MEMBER.items():
        name = next(n for n in names if is_member(groups, n))
        assert groups.group_of(name) == group, name
    # lm_head may be tied to the embeddings (PaliGemma) and then has no parameter of its own.
    assert groups.group_of("lm_head.weight") == "lm_head"
    layer_param = next(n for n in names if _MEMBER["language_layers"](groups, n))
    assert groups.layer_index(layer_param) == 1
    assert groups.layer_index(next(n for n in names if _MEMBER["projector"](groups, n))) is None
    # Every trainable parameter belongs to some group: strategies never miss weights.
    assert all(groups.group_of(n) != "other" for n in names if "rotary" not in n)


def test_peft_wrapped_model_resolves_to_the_same_groups():
    from peft import LoraConfig, get_peft_model

    model, _ = build_tiny("llava")
    plain = resolve_groups(model)
    # Only the language model's attention: the CLIP tower's q_proj is left alone.
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=r".*language_model.*\.q_proj"))
    groups = resolve_groups(wrapped)
    assert groups.paths == plain.paths and groups.num_layers == 2
    lora = [n for n, _ in wrapped.named_parameters() if "lora_A" in n]
    assert lora and lora[0].startswith("base_model.model.")
    assert {groups.group_of(n) for n in lora} == {"language_layers"}
    assert sorted({groups.layer_index(n) for n in lora}) == [0, 1]


def _tiny_gemma3(num_layers: int = 3) -> Gemma3ForConditionalGeneration:
    text = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": num_layers,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "image_size": 32, "patch_size": 8}
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          image_token_id=5, boi_token_index=6, eoi_token_index=7)
    return Gemma3ForConditionalGeneration(config)


def test_unlisted_architecture_is_detected_by_common_names():
    model = _tiny_gemma3(num_layers=3)
    assert model.config.model_type not in {t for f in families().values() for t in f.model_types}
    groups = resolve_groups(model)
    assert groups.family.name == "generic:gemma3"
    assert groups.num_layers == 3
    assert groups.paths["vision_encoder"] == "model.vision_tower"
    assert groups.paths["projector"] == "model.multi_modal_projector"
    assert groups.paths["language_layers"] == "model.language_model.layers"
    assert groups.group_of("model.language_model.layers.2.mlp.up_proj.weight") == "language_layers"


def test_detection_finds_a_projector_nested_in_the_vision_tower():
    model, _ = tiny_model("qwen2_vl")
    detected = detect_family(model, "unregistered_qwen")
    assert detected.vision_encoder == "model.visual"
    assert detected.projector == "model.visual.merger"


def test_missing_group_raises_naming_it():
    torch.manual_seed(0)
    text_only = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(GroupNotFoundError) as err:
        resolve_groups(text_only)
    message = str(err.value)
    assert "vision_encoder" in message and "projector" in message
    assert "language_layers" not in message.split("could not find:")[1]  # found: model.layers
    assert "model.vision_tower" in message  # the candidates tried
    assert "Register a ModelFamily for 'llama'" in message


def test_registered_family_with_wrong_paths_names_the_group():
    model, _ = build_tiny("llava")
    del model.model.multi_modal_projector
    with pytest.raises(GroupNotFoundError, match=r"missing projector at 'model.multi_modal_projector'"):
        resolve_groups(model)


def test_smolvlm_resolves_through_the_idefics3_family():
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    text = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "image_size": 32, "patch_size": 8}
    model = SmolVLMForConditionalGeneration(SmolVLMConfig(text_config=text, vision_config=vision))
    groups = resolve_groups(model)
    assert groups.family.name == "idefics3"
    assert groups.num_layers == 2
    assert groups.group_of("model.connector.modality_projection.proj.weight") == "projector"
