"""Minimal reproduction: PEFT prompt tuning generates differently with and without the KV cache.

transformers 5.24 renamed the cache keyword of ``prepare_inputs_for_generation`` from
``past_key_values`` to ``cache``. PEFT 0.21.2's prompt-learning generation path
(``PeftModelForCausalLM.prepare_inputs_for_generation``) still looks for ``past_key_values``,
finds none, takes every decoding step for the prefill and prepends the virtual tokens again
before each new token. The cache then holds a fresh copy of the soft prompt per step and greedy
tokens drift from the uncached ones (which are right: without a cache PEFT embeds the whole
sequence with one soft prompt every step).

No mmtune code involved: a tiny random Llama built from a config, PEFT prompt tuning, greedy.
Exit status 0 when cached == uncached (fixed), 1 when they differ (the bug is there).

    python benchmarks/upstream/peft_prompt_cache.py
"""
from __future__ import annotations

import sys

import peft
import torch
import transformers
from peft import PromptTuningConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> int:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, initializer_range=0.5)
    model = get_peft_model(LlamaForCausalLM(config), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():  # a soft prompt that matters, as after training
        model.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    model.eval()
    ids = torch.randint(3, 64, (1, 6))
    kw = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False, "attention_mask": torch.ones_like(ids)}
    cached = model.generate(input_ids=ids, **kw)[0, 6:].tolist()
    uncached = model.generate(input_ids=ids, use_cache=False, **kw)[0, 6:].tolist()
    print(f"transformers {transformers.__version__}, peft {peft.__version__}")
    print(f"cached:   {cached}\nuncached: {uncached}")
    print("same tokens: fixed" if cached == uncached else "tokens differ: the bug is there")
    return 0 if cached == uncached else 1


if __name__ == "__main__":
    sys.exit(main())
