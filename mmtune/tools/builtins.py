"""The built-in vision tools, on pixels (``tools.vision``): detect, count, read_text, crop, describe.

Each has an alias made of a word the world model's tokenizer already knows (its vocabulary is
fixed: a new word would change every cached base), so the world model can write the call:
``region ( red circle )``, ``Count ( star )``, ``Read ( [0.00, 0.75, 1.00, 1.00] )``,
``picture ( [0.25, 0.25, 0.50, 0.50] )``, ``Describe ( [0.25, 0.25, 0.50, 0.50] )``.
"""
from __future__ import annotations

from typing import Callable

from PIL import Image

from mmtune.tools.registry import Box, ToolError, tool
from mmtune.tools.vision import Blob, find_objects, read_word
from mmtune.world.language import COLOUR_SYNONYMS, PLURALS, SHAPE_SYNONYMS
from mmtune.world.scenes import COLOURS, SHAPES, SIZES

_KIND_WORDS = {s: s for s in SHAPES} | {PLURALS[s]: s for s in SHAPES} | {v: k for k, v in SHAPE_SYNONYMS.items()}
_COLOUR_WORDS = {c: c for c in COLOURS} | {v: k for k, v in COLOUR_SYNONYMS.items()}
_IGNORED = {"the", "a", "an", "object", "objects"}


def _matches(name: str) -> Callable[[Blob], bool]:
    """A test of a blob against an object phrase: any of size, colour and shape words, in any order."""
    wanted: dict[str, str] = {}
    for word in name.lower().split():
        if word in _IGNORED:
            continue
        if word in SIZES:
            wanted["size"] = word
        elif word in _COLOUR_WORDS:
            wanted["colour"] = _COLOUR_WORDS[word]
        elif word in _KIND_WORDS:
            wanted["kind"] = _KIND_WORDS[word]
        else:
            raise ToolError(f"unknown word {word!r} in {name!r}: name a shape ({', '.join(SHAPES)}), "
                            f"a colour or a size")
    return lambda blob: all(getattr(blob, key) == value for key, value in wanted.items())


def _pixels(box: Box, image: Image.Image) -> tuple[int, int, int, int]:
    w, h = image.size
    x1, y1, x2, y2 = (round(v * s) for v, s in zip(box, (w, h, w, h)))
    if x2 <= x1 or y2 <= y1:
        raise ToolError(f"empty box {list(box)}: write [x1, y1, x2, y2] with x1 < x2 and y1 < y2, in [0, 1]")
    return x1, y1, x2, y2


def _normalized(blob: Blob, image: Image.Image) -> Box:
    w, h = image.size
    return tuple(round(v / s, 2) for v, s in zip(blob.box, (w, h, w, h)))  # type: ignore[return-value]


def _inside(blob: Blob, box: tuple[int, int, int, int]) -> bool:
    """The blob's centre lies in the box."""
    cx, cy = (blob.box[0] + blob.box[2]) / 2, (blob.box[1] + blob.box[3]) / 2
    return box[0] <= cx < box[2] and box[1] <= cy < box[3]


@tool("detect", alias="region")
def detect(image: Image.Image, name: str) -> list[Box]:
    """Find every object that fits a phrase and return their boxes, top to bottom.

    Args:
        name: the object, e.g. "red circle", "stars", "large square"
    """
    fits = _matches(name)
    return [_normalized(b, image) for b in find_objects(image) if fits(b)]


@tool("count", alias="Count")
def count(image: Image.Image, name: str) -> int:
    """Count the objects that fit a phrase.

    Args:
        name: the objects to count, e.g. "stars", "blue circle"
    """
    fits = _matches(name)
    return sum(fits(b) for b in find_objects(image))


@tool("read_text", alias="Read")
def read_text(image: Image.Image, box: Box) -> str:
    """Read the printed word inside a box ("no" when there is none).

    Args:
        box: [x1, y1, x2, y2] in [0, 1] image coordinates; [0, 0, 1, 1] reads the whole image
    """
    return read_word(image, _pixels(box, image)) or ""


@tool("crop", alias="picture")
def crop(image: Image.Image, box: Box) -> Image.Image:
    """Cut a box out of the image and enlarge it to the image's size, a zoomed view to look at.

    Args:
        box: [x1, y1, x2, y2] in [0, 1] image coordinates
    """
    return image.crop(_pixels(box, image)).resize(image.size, Image.NEAREST)


@tool("describe", alias="Describe")
def describe(image: Image.Image, box: Box) -> str:
    """Name the objects whose centre lies in a box: size, colour and shape, joined by "and".

    Args:
        box: [x1, y1, x2, y2] in [0, 1] image coordinates
    """
    region = _pixels(box, image)
    return " and ".join(b.phrase for b in find_objects(image) if _inside(b, region))
