"""Answer one image + prompt with a (tuned) checkpoint, greedily, through the training chat template."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmtune.data.collate import GenerationCollator
from mmtune.data.sample import ImageRef, Sample, user_turn
from mmtune.strategies.checkpoint import load_tuned


@torch.no_grad()
def generate_answer(model: Any, processor: Any, image: ImageRef | None, prompt: str, max_new_tokens: int = 32) -> str:
    """Greedy answer of an already loaded ``model`` to ``prompt`` about ``image`` (None: text only)."""
    images = [image] if image is not None else []
    sample = Sample("infer", [user_turn(prompt, n_images=len(images))], images)
    batch = GenerationCollator(processor)([sample])
    inputs = batch.inputs.to(model.device)
    model.eval()
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = out[:, inputs["input_ids"].shape[1]:]
    return processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()


def infer(model_dir: str | Path, image: ImageRef | None, prompt: str, max_new_tokens: int = 32,
          allow_pickle: bool = False) -> str:
    """Load ``model_dir`` (mmtune or plain transformers checkpoint) and answer ``prompt`` about ``image``."""
    if isinstance(image, (str, Path)) and not Path(image).is_file():
        raise FileNotFoundError(f"image {image} does not exist")
    loaded = load_tuned(model_dir, allow_pickle=allow_pickle)
    return generate_answer(loaded.model, loaded.processor, image, prompt, max_new_tokens)
