"""What strategies do to a model's outputs and its training: zero-init, updates, prompts, optimizer groups."""

from __future__ import annotations

import pytest
import torch

from mmtune.strategies import apply_strategy, optimizer_param_groups
from mmtune.strategies.targets import plain_named_parameters


def _logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize(
    "spec, atol",
    [
        ("lora(r=4)", 0.0),
        ("dora(r=4)", 1e-6),
        ("rslora(r=4)", 0.0),
        ("loha(r=2)", 0.0),
        ("vera(r=4)", 0.0),
        ("ia3", 0.0),
        ("adapter(bottleneck=8)", 0.0),
        ("llama_adapter(n=3, layers=2)", 0.0),
        ("pissa(r=2)", 1e-5),  # the base keeps W - BA, so equality holds up to float rounding
    ],
)
def test_added_modules_start_as_identity(tiny, spec, atol):
    t = tiny("llava")
    inputs = t.inputs()
    before = _logits(t.model, inputs)
    model, _ = apply_strategy(t.model, spec, t.groups)
    torch.testing.assert_close(_logits(model, inputs), before, atol=atol, rtol=0)


@pytest.mark.parametrize("spec", ["adapter(bottleneck=8)", "lora(r=2)"])
def test_zero_init_on_a_second_family(tiny, spec):
    t = tiny("qwen2_vl")
    inputs = t.inputs()
    before = _logits(t.model, inputs)
    model, _ = apply_strategy(t.model, spec, t.groups)
    torch.testing.assert_close(_logits(model, inputs), before, atol=0, rtol=0)


def _sgd_steps(model, inputs, groups, steps=2, lr=0.5):
    opt = torch.optim.SGD(optimizer_param_groups(model, groups, lr=lr, group_lr={}), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**inputs, labels=inputs["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return loss.item()


@pytest.mark.parametrize(
    "spec",
    [
        "last+projector",
        "lora(r=2)",
        "adapter(bottleneck=4)",
        "llama_adapter(n=2, layers=1)",
        "bias(groups=projector)",
    ],
)
def test_sgd_changes_exactly_the_trainable_parameters(tiny, spec):
    t = tiny("llava")
    model, _ = apply_strategy(t.model, spec, t.groups)
    before = {n: p.detach().clone() for n, p in plain_named_parameters(model)}
    _sgd_steps(model, t.inputs(), t.groups)
    for n, p in plain_named_parameters(model):
        changed = not torch.equal(before[n], p.detach())
        assert changed == p.requires_grad, f"{n}: requires_grad={p.requires_grad} but changed={changed}"


def test_prompt_tuning_never_starts_from_the_image_token(tiny, monkeypatch):
    # PEFT samples virtual tokens from the vocabulary; a copy of <image> counts as one more image
    # position and the forward fails. Force that draw and check it is replaced.
    t = tiny("llava")
    image_id = t.model.config.image_token_id
    real_randint = torch.randint
    monkeypatch.setattr(torch, "randint", lambda *args, **kw: torch.full(args[-1], image_id, dtype=torch.long)
                        if args[-1] == (4,) else real_randint(*args, **kw))
    model, _ = apply_strategy(t.model, "prompt(n=4)", t.groups)
    monkeypatch.setattr(torch, "randint", real_randint)
    image_row = model.get_input_embeddings().weight[image_id]
    prompt = model.prompt_encoder["default"].embedding.weight
    assert not any(torch.equal(row, image_row) for row in prompt)
    inputs = t.inputs()
    assert torch.isfinite(model(**inputs, labels=inputs["input_ids"]).loss)


def test_prompt_tuning_trains_and_generates_with_kv_cache(tiny):
    t = tiny("llava")
    model, summary = apply_strategy(t.model, "prompt(n=4)", t.groups)
    assert summary.trainable == {**{g: 0 for g in summary.trainable if g != "other"}, "other": 4 * 64}
    inputs = t.inputs()
    first = model(**inputs, labels=inputs["input_ids"]).loss.item()
    last = _sgd_steps(model, inputs, t.groups, steps=5, lr=1.0)
    assert last < first
    model.eval()
    kw = {"max_new_tokens": 4, "do_sample": False, "min_new_tokens": 4}
    cached = model.generate(**inputs, **kw)
    uncached = model.generate(**inputs, use_cache=False, **kw)
    assert cached.shape == (1, inputs["input_ids"].shape[1] + 4)
    assert torch.equal(cached, uncached)
    # the learned prompt really conditions generation: zeroing it changes the first-step logits
    logits = model(**inputs).logits[:, -1]
    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.zero_()
    assert not torch.allclose(model(**inputs).logits[:, -1], logits)


def test_llama_adapter_attends_to_its_prompts_and_generates_with_kv_cache(llava):
    model, _ = apply_strategy(llava.model, "llama_adapter(n=3, layers=1)", llava.groups)
    inputs = llava.inputs()
    before = _logits(model, inputs)
    attn = llava.groups.module(model, "language_layers")[-1].self_attn
    with torch.no_grad():
        attn.mmtune_adaption_prompt.gate.fill_(1.0)
    assert not torch.allclose(_logits(model, inputs), before)
    kw = {"max_new_tokens": 4, "do_sample": False, "min_new_tokens": 4}
    assert torch.equal(model.generate(**inputs, **kw), model.generate(**inputs, use_cache=False, **kw))


def test_llama_adapter_refuses_mrope(tiny):
    t = tiny("qwen2_vl")
    with pytest.raises(ValueError, match="M-RoPE"):
        apply_strategy(t.model, "llama_adapter(layers=1)", t.groups)


def test_optimizer_groups_split_lr_and_weight_decay(llava):
    model, _ = apply_strategy(llava.model, "last+projector", llava.groups)
    groups = optimizer_param_groups(
        model, llava.groups, lr=1e-3, group_lr={"projector": 2e-5}, weight_decay=0.1
    )
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"default/decay", "default/no_decay", "projector/decay", "projector/no_decay"}
    assert [len(by_name[k]["params"]) for k in sorted(by_name)] == [
        7,
        2,
        2,
        2,
    ]  # 7 linears, 2 norms, 2 W, 2 b
    assert by_name["projector/decay"]["lr"] == 2e-5 and by_name["default/decay"]["lr"] == 1e-3
    assert (
        by_name["default/decay"]["weight_decay"] == 0.1
        and by_name["projector/no_decay"]["weight_decay"] == 0.0
    )
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == n_trainable


def test_optimizer_groups_errors(llava):
    with pytest.raises(ValueError, match="group_lr: unknown group"):
        optimizer_param_groups(llava.model, llava.groups, lr=1e-3, group_lr={"proj": 1e-5})
    for p in llava.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        optimizer_param_groups(llava.model, llava.groups, lr=1e-3, group_lr={})


def test_summary_counts_and_table(llava):
    _, summary = apply_strategy(llava.model, "projector", llava.groups)
    # projector: linear_1 32->64 and linear_2 64->64, with biases
    assert summary.trainable["projector"] == summary.total["projector"] == 32 * 64 + 64 + 64 * 64 + 64
    d = summary.to_dict()
    assert d["spec"] == "projector" and d["trainable_params"] == 6272
    assert d["groups"]["language_layers"]["trainable"] == 0
    assert d["total_params"] == sum(p.numel() for p in llava.model.parameters())
    table = summary.table()
    assert "strategy: projector" in table and "100.00" in table and table.splitlines()[-1].startswith("all")


def test_groups_are_resolved_when_not_given(llava):
    _, summary = apply_strategy(llava.model, "last")
    assert summary.trainable["language_layers"] * 2 == summary.total["language_layers"]


def test_selection_errors_name_the_problem(llava):
    with pytest.raises(ValueError, match="no bias terms; try bias\\(groups=vision\\|projector\\)"):
        apply_strategy(llava.model, "bias", llava.groups)
    with pytest.raises(ValueError, match="only 2 decoder layers"):
        apply_strategy(llava.model, "top(k=3)", llava.groups)


def test_llama_adapter_matches_peft_adaption_prompt_on_plain_llama():
    """Parity with PEFT's AdaptionPrompt where PEFT supports it (a top-level Llama)."""
    import copy

    from peft import AdaptionPromptConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmtune.models.family import ModelFamily, ModelGroups

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
    )
    base = LlamaForCausalLM(config).eval()
    family = ModelFamily(
        "llama", ("llama",), "", "", "model.embed_tokens", "model.layers", "model.norm", "lm_head"
    )
    ours, _ = apply_strategy(
        copy.deepcopy(base), "llama_adapter(n=3, layers=1)", ModelGroups(family, family.paths(), 2)
    )
    theirs = get_peft_model(
        base, AdaptionPromptConfig(adapter_len=3, adapter_layers=1, task_type="CAUSAL_LM")
    )
    block = ours.model.layers[1].self_attn.mmtune_adaption_prompt
    attn = theirs.get_base_model().model.layers[1].self_attn
    with torch.no_grad():
        attn.adaption_gate.fill_(0.7)
        block.gate.fill_(0.7)
        block.prompt.copy_(attn.adaption_prompt[0])
    ids = torch.randint(0, 100, (2, 7))
    torch.testing.assert_close(ours(input_ids=ids).logits, theirs(input_ids=ids).logits, atol=1e-6, rtol=0)


def test_prompt_vectors_start_at_the_embedding_table_scale(tiny):
    # Soft prompts initialised far off the token-embedding scale wreck a pre-trained model before
    # step 0 (seen: loss 3.5 -> 9.8 on the world base with PEFT's N(0, 1) default).
    t = tiny("llava")
    word_std = t.model.get_input_embeddings().weight.std().item()
    model, _ = apply_strategy(t.model, "prompt(n=8)", t.groups)
    prompt_std = model.prompt_encoder["default"].embedding.weight.std().item()
    assert 0.5 * word_std < prompt_std < 2.0 * word_std
