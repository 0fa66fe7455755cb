"""The world's stand-in for a pre-trained vision encoder.

A real MLLM starts from a vision tower pre-trained on millions of images (CLIP, SigLIP). A tiny
tower initialised at random and trained for minutes on a CPU does not get there: its features
barely vary between scenes, and the language model learns the answer priors and ignores the image
(measured: identical loss on shuffled images after 2000 steps). So the built-in model starts from a
fixed, informative encoder instead: each patch filter responds to one colour, or one (shape,
colour) pair, of the natural domain, and the transformer layers start as the identity (zeroed
output projections). The encoder is then frozen during pre-training, as in LLaVA. The aerial
domain's palette and textures were not designed into these filters: its features are weaker,
which is what makes it a visual-domain shift for the tuning strategies.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from mmtune.world import scenes

# CLIP's normalisation, which the world processor applies (CLIPImageProcessor defaults).
_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def _normalised(rgb: tuple[int, int, int]) -> np.ndarray:
    return (np.asarray(rgb) / 255.0 - _MEAN) / _STD


def _shape_templates(cell: int) -> dict[str, np.ndarray]:
    """Zero-mean masks of each shape drawn large in one cell: a flat background gives 0."""
    out = {}
    side = scenes.SIZES["large"]
    off = (cell - side) // 2
    for shape in scenes.SHAPES:
        im = Image.new("L", (cell, cell), 0)
        scenes._draw_shape(ImageDraw.Draw(im), shape, (off, off, off + side, off + side), 255)
        t = np.asarray(im, dtype=np.float64) / 255.0
        out[shape] = t - t.mean()
    return out


def init_feature_extractor(vision_tower: nn.Module, seed: int = 0) -> int:
    """Set a CLIP vision tower's patch filters to colour and (shape, colour) detectors and its
    position embeddings to grid column/row codes; returns how many channels were designed (the
    rest stay small and random)."""
    conv = vision_tower.embeddings.patch_embedding
    out_ch, _, cell, _ = conv.weight.shape
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(conv.weight.shape, generator=gen) * 1e-3
    background = _normalised(scenes.BACKGROUND)
    templates = _shape_templates(cell)
    # Every object colour is darker than the background, so a template along "darker than the
    # background" detects a shape whatever its colour (what "Is there a triangle?" asks).
    darker = -np.ones(3) / np.sqrt(3)
    designed = [(darker, t / np.abs(t).sum() * 8.0) for t in templates.values()]
    for rgb in scenes.COLOURS.values():
        direction = _normalised(rgb) - background
        direction /= np.linalg.norm(direction)
        designed.append((direction, np.ones((cell, cell)) / cell**2 * 4.0))  # colour anywhere in the patch
        designed += [(direction, t / np.abs(t).sum() * 8.0) for t in templates.values()]  # shape in this colour
    k = min(out_ch, len(designed))
    for i, (direction, spatial) in enumerate(designed[:k]):
        weight[i] = torch.from_numpy(np.einsum("c,hw->chw", direction, spatial))
    with torch.no_grad():
        conv.weight.copy_(weight.to(conv.weight.dtype))
        k += _design_positions(vision_tower.embeddings.position_embedding.weight, first=k)
        for layer in vision_tower.encoder.layers:
            for linear in (layer.self_attn.out_proj, layer.mlp.fc2):
                linear.weight.zero_()
                linear.bias.zero_()
    return k


def _design_positions(weight: torch.Tensor, first: int, scale: float = 10.0) -> int:
    """Position embeddings that say which grid column and row a patch is in: one-hot each, then
    (where two channels are left) a column and a row ramp from -1 to 1, so "left of" is a linear
    comparison; in the channels from ``first`` on, CLIP's CLS position 0 stays zero. Random ones,
    as initialised, are ~50x smaller than the patch filters' responses, so "is the circle left of
    the star?" had nothing to compare. Returns how many channels it used (0 if none fit)."""
    side = round((weight.shape[0] - 1) ** 0.5)
    if first + 2 * side > weight.shape[1]:
        return 0
    ramps = first + 2 * side + 2 <= weight.shape[1]
    weight.zero_()
    half = (side - 1) / 2
    for patch in range(side * side):
        row, col = divmod(patch, side)
        weight[1 + patch, first + col] = scale
        weight[1 + patch, first + side + row] = scale
        if ramps:
            weight[1 + patch, first + 2 * side] = scale * (col - half) / half
            weight[1 + patch, first + 2 * side + 1] = scale * (row - half) / half
    return 2 * side + 2 * ramps
