"""Image corruptions for mDPO's conditional preference: the same chosen response, given a less
informative image m', should become less likely than with the real image m.

Each corruption is a pure function of (image, seed, key, parameters), so a pair's corrupted image
is the same on every run and for every order the pairs come in:

- ``crop`` (mDPO's choice): a random crop covering 1-20% of the image area, resized back to the
  image's size -- luka-group/mDPO ``bunny/modeling_bunny_phi.py`` (commit 2221bb3) calls
  ``torchvision.transforms.v2.RandomResizedCrop(size, scale=(0.01, 0.2))`` (aspect ratio 3/4-4/3,
  torchvision's default). The crop box is drawn as torchvision draws it (ten tries at a random
  area and ratio, then the largest centred crop of an allowed ratio), on Python's ``random``.
- ``mask``: a share of the cells of a grid painted over with the image's mean colour (the objects
  under them are gone, the rest of the image is intact).
- ``noise``: the forward diffusion q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) at step t of
  1000 on pixels scaled to [-1, 1], with the sigmoid beta schedule of VCD's ``add_diffusion_noise``
  (DAMO-NLP-SG/VCD ``vcd_utils/vcd_add_noise.py``, commit 039af55; POVID noises its images by
  forward diffusion too), default step 500 as VCD's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmtune.data.sample import ImageRef, load_image

CROP_SCALE = (0.01, 0.2)  # mDPO: share of the image area kept
CROP_RATIO = (3 / 4, 4 / 3)  # torchvision RandomResizedCrop's default aspect ratios
MASK_GRID = 8
MASK_FRACTION = 0.8  # hides as much as the largest mDPO crop leaves out
NOISE_STEP = 500  # VCD's default noise_step (of 1000)


def _seeded(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def crop_box(width: int, height: int, rng: random.Random, scale: Sequence[float] = CROP_SCALE,
             ratio: Sequence[float] = CROP_RATIO) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` of a random crop whose area is a ``scale`` share of the image and whose
    width/height lies in ``ratio`` (torchvision RandomResizedCrop's sampling rule)."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            return x, y, x + w, y + h
    # No draw fitted: the largest centred crop whose ratio is allowed.
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    x, y = (width - w) // 2, (height - h) // 2
    return x, y, x + w, y + h


def crop(image: Image.Image, rng: random.Random, scale: Sequence[float] = CROP_SCALE,
         ratio: Sequence[float] = CROP_RATIO) -> tuple[Image.Image, dict[str, Any]]:
    """mDPO's corruption: a random crop of ``scale`` of the area, resized back to the image's size."""
    box = crop_box(image.width, image.height, rng, scale, ratio)
    out = image.crop(box).resize(image.size, Image.Resampling.BILINEAR)
    return out, {"scale": list(scale), "ratio": list(ratio), "box": list(box)}


def mask(image: Image.Image, rng: random.Random, fraction: float = MASK_FRACTION,
         grid: int = MASK_GRID) -> tuple[Image.Image, dict[str, Any]]:
    """Paint ``fraction`` of a ``grid`` x ``grid`` set of cells with the image's mean colour."""
    if not 0 < fraction <= 1 or grid < 1:
        raise ValueError(f"mask corruption: fraction must be in (0, 1] and grid >= 1, got {fraction}, {grid}")
    pixels = np.asarray(image, dtype=np.uint8).copy()
    fill = pixels.reshape(-1, pixels.shape[-1]).mean(axis=0).round().astype(np.uint8)
    cells = sorted(rng.sample(range(grid * grid), round(fraction * grid * grid)))
    ys = np.linspace(0, image.height, grid + 1).round().astype(int)
    xs = np.linspace(0, image.width, grid + 1).round().astype(int)
    for c in cells:
        r, k = divmod(c, grid)
        pixels[ys[r]:ys[r + 1], xs[k]:xs[k + 1]] = fill
    return Image.fromarray(pixels, image.mode), {"fraction": fraction, "grid": grid, "cells": cells}


def diffusion_alpha_bar(step: int, steps: int = 1000) -> float:
    """abar_t of VCD's schedule: beta_i = sigmoid(linspace(-6, 6, steps))_i * (5e-3 - 1e-5) + 1e-5."""
    if not 0 <= step < steps:
        raise ValueError(f"noise corruption: step must be in [0, {steps}), got {step}")
    betas = 1 / (1 + np.exp(-np.linspace(-6, 6, steps))) * (0.5e-2 - 1e-5) + 1e-5
    return float(np.prod(1 - betas[: step + 1]))


def noise(image: Image.Image, rng: random.Random, step: int = NOISE_STEP) -> tuple[Image.Image, dict[str, Any]]:
    """Forward diffusion to ``step``: x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, x in [-1, 1]."""
    abar = diffusion_alpha_bar(step)
    x0 = np.asarray(image, dtype=np.float64) / 127.5 - 1
    eps = np.random.default_rng(rng.getrandbits(64)).standard_normal(x0.shape)
    xt = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    out = np.clip(np.round((xt + 1) * 127.5), 0, 255).astype(np.uint8)
    return Image.fromarray(out, image.mode), {"step": step, "alpha_bar": round(abar, 6)}


Corruption = Callable[..., "tuple[Image.Image, dict[str, Any]]"]
CORRUPTIONS: dict[str, Corruption] = {"crop": crop, "mask": mask, "noise": noise}


def corrupt_image(image: ImageRef, method: str = "crop", *, seed: int = 0, key: str = "",
                  **params: Any) -> tuple[Image.Image, dict[str, Any]]:
    """``image`` corrupted by ``method`` (one of ``CORRUPTIONS``), and the record of what was done
    (method, seed, key and the drawn parameters). ``key`` (e.g. the pair's id) gives each image
    its own draw under one seed."""
    if method not in CORRUPTIONS:
        raise ValueError(f"unknown image corruption {method!r}; use one of {sorted(CORRUPTIONS)}")
    out, drawn = CORRUPTIONS[method](load_image(image), _seeded(seed, key), **params)
    return out, {"method": method, "seed": seed, "key": key, **drawn}


def corrupt_pairs(prefs: Sequence[Any], out_dir: str | Path, method: str = "crop", *, seed: int = 0,
                  relative_to: str | Path | None = None, **params: Any) -> list[Any]:
    """Copies of preference pairs whose ``meta["image_corruption"]`` names a corrupted first image,
    saved as ``out_dir/<id>.png``; the path in meta is relative to ``relative_to`` (the folder of
    the preference file, so the pairs and their images move together), else absolute."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for pref in prefs:
        if not pref.images:
            raise ValueError(f"preference {pref.id!r} has no image to corrupt; mDPO's conditional term needs one")
        image, record = corrupt_image(pref.images[0], method, seed=seed, key=str(pref.id), **params)
        path = out_dir / f"{_safe_name(str(pref.id))}.png"
        image.save(path)
        where = os.path.relpath(path.resolve(), Path(relative_to).resolve()) if relative_to is not None else path.resolve()
        record = {"image": str(where), **record}
        out.append(dataclasses.replace(pref, meta={**pref.meta, "image_corruption": record}))
    return out


def _safe_name(name: str) -> str:
    """A file name from a record id (ids may hold slashes or other path characters)."""
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return clean or hashlib.sha1(name.encode()).hexdigest()[:12]
