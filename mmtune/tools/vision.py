"""Pixel-level vision for the world's natural scenes: colour blobs, shape templates, word templates.

Classical image processing fit for what ``world.scenes.render`` draws: objects are flat fills in
exact palette colours (no anti-aliasing), so an object is a connected blob of one palette colour;
its shape and size are read by matching the blob's mask against masks the renderer draws for
each (shape, size); the printed word is grey and read by matching against the lexicon rendered in
the same font. Nothing here reads a ``Scene``: every answer comes from the image's pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from mmtune.world.scenes import (
    BACKGROUND,
    COLOURS,
    SHAPES,
    SIZES,
    WORD_COLOUR,
    WORDS,
    Scene,
    SceneObject,
    render,
)

_TEMPLATE_ORIGIN = 16  # templates are drawn away from the border so no pixel is clipped


@dataclass(frozen=True)
class Blob:
    """One object found in an image: its shape, colour and size as read from the pixels, and its
    box in pixels ``(x1, y1, x2, y2)``, exclusive ends, as the renderer placed it."""

    kind: str
    colour: str
    size: str
    box: tuple[int, int, int, int]
    match: float  # IoU of the blob's mask with the best template, 1.0 for an exact shape

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.kind}"


def components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean mask, each as an array of ``(y, x)`` pixels (a star's
    side points touch its body only at a corner)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    found = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        stack, pixels = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pixels.append((y, x))
            for ny, nx in ((y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        found.append(np.array(pixels))
    return found


def _crop_mask(pixels: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The blob's mask cut to its extent, and the extent's top-left ``(y, x)``."""
    y0, x0 = pixels.min(axis=0)
    y1, x1 = pixels.max(axis=0)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=bool)
    mask[pixels[:, 0] - y0, pixels[:, 1] - x0] = True
    return mask, int(y0), int(x0)


@lru_cache(maxsize=1)
def shape_templates() -> dict[tuple[str, str], tuple[np.ndarray, int, int]]:
    """(shape, size) -> the mask the renderer draws, cut to its extent, and the extent's offset
    ``(dy, dx)`` from the object's box corner (a star's points do not reach its box's bottom)."""
    templates = {}
    colour = next(iter(COLOURS))
    for kind in SHAPES:
        for size, side in SIZES.items():
            box = (_TEMPLATE_ORIGIN, _TEMPLATE_ORIGIN, _TEMPLATE_ORIGIN + side, _TEMPLATE_ORIGIN + side)
            pixels = np.array(render(Scene("natural", (SceneObject(kind, colour, size, box),))))
            mask, y0, x0 = _crop_mask(np.argwhere(np.all(pixels == COLOURS[colour], axis=-1)))
            templates[(kind, size)] = (mask, y0 - _TEMPLATE_ORIGIN, x0 - _TEMPLATE_ORIGIN)
    return templates


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    pa = np.zeros((h, w), dtype=bool)
    pb = np.zeros((h, w), dtype=bool)
    pa[: a.shape[0], : a.shape[1]] = a
    pb[: b.shape[0], : b.shape[1]] = b
    return float((pa & pb).sum() / max(1, (pa | pb).sum()))


def find_objects(image: Image.Image) -> list[Blob]:
    """Every palette-coloured object of a natural-domain image, top-to-bottom, left-to-right."""
    pixels = np.array(image.convert("RGB"))
    blobs = []
    for colour, rgb in COLOURS.items():
        for component in components(np.all(pixels == rgb, axis=-1)):
            mask, y0, x0 = _crop_mask(component)
            (kind, size), score = max(((key, _iou(mask, t[0])) for key, t in shape_templates().items()),
                                      key=lambda item: item[1])
            _, dy, dx = shape_templates()[(kind, size)]
            side = SIZES[size]
            blobs.append(Blob(kind, colour, size, (x0 - dx, y0 - dy, x0 - dx + side, y0 - dy + side), score))
    return sorted(blobs, key=lambda b: (b.box[1], b.box[0]))


def _text_mask(pixels: np.ndarray) -> np.ndarray:
    """Pixels of the grey, anti-aliased word: grey (r = g = b) and darker than the background,
    which no palette colour is."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    grey = (np.abs(r - g) <= 2) & (np.abs(g - b) <= 6) & (r < BACKGROUND[0] - 20) & (r >= WORD_COLOUR[0] - 2)
    return grey


@lru_cache(maxsize=1)
def word_templates() -> dict[str, np.ndarray]:
    """word -> the text mask the renderer draws for it (the lexicon is the OCR's dictionary)."""
    return {w: _text_mask(np.array(render(Scene("natural", (), word=w)))) for w in WORDS}


def read_word(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> str | None:
    """The printed word inside ``box`` (pixels; the whole image if None), or None when no text is
    there: the lexicon word whose rendered text mask overlaps the image's best (IoU >= 0.5)."""
    mask = _text_mask(np.array(image.convert("RGB")))
    if box is not None:
        keep = np.zeros_like(mask)
        x1, y1, x2, y2 = box
        keep[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = True
        mask &= keep
    if mask.sum() < 8:
        return None
    word, score = max(((w, _iou(mask, t)) for w, t in word_templates().items()), key=lambda item: item[1])
    return word if score >= 0.5 else None
