"""Grounding (referring expressions): reading the box a model writes, per family's coordinates; IoU, acc@0.5.

Where a box is read, strictest form first (the rule that fired is returned):
``box_tokens`` Qwen2-VL's ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``; ``json`` Qwen2.5-VL's
``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]`` (keys as lmms-eval's refcoco_grounding/utils.py
reads them); ``bracketed`` the first "[x1, y1, x2, y2]" (lmms-eval's refcoco/utils_rec.py
``parse_float_sequence_within``); ``corner_pairs`` "(x1,y1),(x2,y2)" (Qwen2-VL decoded without its
special tokens); ``four_numbers`` a run of exactly four numbers ("<box>50 20 10 80</box>"). Digits
inside words or an echoed expression ("guy 2nd from left") are never coordinates.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

Box = tuple[float, float, float, float]  # x1, y1, x2, y2

_NUM = r"-?\d+(?:\.\d+)?"
_SEP = r"\s*[,\s]\s*"
_BOX_TOKENS = re.compile(rf"<\|box_start\|>\s*\(\s*({_NUM}){_SEP}({_NUM})\s*\)\s*,?\s*\(\s*({_NUM}){_SEP}({_NUM})\s*\)\s*<\|box_end\|>")
_BRACKETED = re.compile(rf"\[\s*({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})\s*\]")
_CORNER_PAIRS = re.compile(rf"\(\s*({_NUM}){_SEP}({_NUM})\s*\)\s*,?\s*\(\s*({_NUM}){_SEP}({_NUM})\s*\)")
# A number standing alone: not glued to a letter ("2nd", "bbox_2d") or to another number.
_FREE_NUM = rf"(?<![\w.]){_NUM}(?![\w]|\.\d)"
_RUN = re.compile(rf"{_FREE_NUM}(?:[,;\s]+{_FREE_NUM})*")
_BOX_KEYS = ("bbox_2d", "bbox", "box", "coordinates")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*(?:```|$)", re.DOTALL | re.IGNORECASE)


def _json_box(data: Any) -> list[float] | None:
    """The first box in parsed JSON: a dict with a box key, or a bare list of four numbers."""
    if isinstance(data, dict):
        for key in _BOX_KEYS:
            value = data.get(key)
            if isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
                return [float(v) for v in value]
        data = list(data.values())
    if isinstance(data, list):
        if len(data) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
            return [float(v) for v in data]
        for item in data:
            if isinstance(item, (list, dict)) and (box := _json_box(item)) is not None:
                return box
    return None


def _from_json(text: str) -> list[float] | None:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    for start, end in (("[", "]"), ("{", "}")):
        i, j = body.find(start), body.rfind(end)
        if i != -1 and j > i:
            try:
                box = _json_box(json.loads(body[i:j + 1]))
            except json.JSONDecodeError:
                continue
            if box is not None:
                return box
    return None


def find_box(text: str) -> tuple[list[float] | None, str]:
    """The four numbers of the first box in ``text``, in the model's own coordinates, and the rule."""
    if m := _BOX_TOKENS.search(text):
        return [float(v) for v in m.groups()], "box_tokens"
    if "{" in text and (box := _from_json(text)) is not None:
        return box, "json"
    for rx, rule in ((_BRACKETED, "bracketed"), (_CORNER_PAIRS, "corner_pairs")):
        if m := rx.search(text):
            return [float(v) for v in m.groups()], rule
    for run in _RUN.finditer(text):
        numbers = re.findall(_FREE_NUM, run.group(0))
        if len(numbers) == 4:
            return [float(v) for v in numbers], "four_numbers"
    return None, "unparsed"


def smart_resize_size(image_size: tuple[int, int], factor: int = 28, min_pixels: int = 56 * 56,
                      max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """(width, height) a Qwen2-VL-style processor resizes an image to before the model sees it.

    transformers' ``smart_resize`` (models/qwen2_vl/image_processing_pil_qwen2_vl.py): both sides
    multiples of ``factor`` = patch_size x merge_size, area within [min_pixels, max_pixels]; the
    defaults are Qwen2VLImageProcessor's own.
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    width, height = image_size
    new_height, new_width = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_width, new_height


def _need_size(size: tuple[int, int] | None, fmt: str) -> tuple[int, int]:
    if size is None:
        raise ValueError(f"box format {fmt!r} needs the image size (width, height): give the sample an "
                         "image_size in its meta or an in-memory image")
    return size


def _from_norm1(v: Sequence[float], size: tuple[int, int] | None) -> Box:
    return (v[0], v[1], v[2], v[3])


def _from_norm1000(v: Sequence[float], size: tuple[int, int] | None) -> Box:
    return (v[0] / 1000.0, v[1] / 1000.0, v[2] / 1000.0, v[3] / 1000.0)


def _from_pixel(v: Sequence[float], size: tuple[int, int] | None) -> Box:
    w, h = _need_size(size, "pixel")
    return (v[0] / w, v[1] / h, v[2] / w, v[3] / h)


def _from_resized_pixel(v: Sequence[float], size: tuple[int, int] | None, **resize: int) -> Box:
    # Qwen2.5-VL writes absolute pixels on the image its processor resized (QwenLM/Qwen2.5-VL
    # cookbooks/spatial_understanding.ipynb divides by image_grid_thw x 14, the same size).
    w, h = smart_resize_size(_need_size(size, "resized_pixel"), **resize)
    return (v[0] / w, v[1] / h, v[2] / w, v[3] / h)


# ``ModelFamily.box_format`` -> conversion of the four numbers a model writes to [0, 1] coordinates.
# "resized_pixel" may carry its processor's resize: "resized_pixel(factor=28,min_pixels=3136,max_pixels=12845056)".
BOX_FORMATS: dict[str, Callable[..., Box]] = {
    "norm1": _from_norm1,
    "norm1000": _from_norm1000,
    "pixel": _from_pixel,
    "resized_pixel": _from_resized_pixel,
}
_RESIZE_KEYS = ("factor", "min_pixels", "max_pixels")


def _parse_format(box_format: str) -> tuple[str, dict[str, int]]:
    m = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", box_format)
    name = m.group(1) if m else box_format
    if name not in BOX_FORMATS:
        raise ValueError(f"unknown box format {box_format!r}; known: {', '.join(BOX_FORMATS)}")
    params: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in ((m.group(2) or "") if m else "").split(","))):
        key, _, value = item.partition("=")
        if name != "resized_pixel" or key.strip() not in _RESIZE_KEYS or not value.strip().isdigit():
            raise ValueError(f"box format {box_format!r}: {item!r} is not a setting it takes; only "
                             f"resized_pixel takes integer {', '.join(_RESIZE_KEYS)}")
        params[key.strip()] = int(value)
    return name, params


def box_format_for(box_format: str, processor: Any) -> str:
    """The family's ``box_format`` with the loaded processor's resize filled in (for "resized_pixel")."""
    if box_format != "resized_pixel":
        return box_format
    image_processor = getattr(processor, "image_processor", processor)
    size = getattr(image_processor, "size", None) or {}
    get = size.get if hasattr(size, "get") else lambda k: getattr(size, k, None)
    min_pixels = getattr(image_processor, "min_pixels", None) or get("shortest_edge")
    max_pixels = getattr(image_processor, "max_pixels", None) or get("longest_edge")
    patch, merge = getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None)
    if not (min_pixels and max_pixels and patch and merge):
        raise ValueError(f"box format 'resized_pixel': {type(image_processor).__name__} has no min/max pixels, "
                         "patch_size or merge_size; give the family a box_format that names its coordinates")
    return f"resized_pixel(factor={patch * merge},min_pixels={min_pixels},max_pixels={max_pixels})"


def read_box(text: str, box_format: str = "norm1",
             image_size: tuple[int, int] | None = None) -> tuple[Box | None, str]:
    """The first box in ``text`` as a normalized [0, 1] (x1, y1, x2, y2), and the rule that found it.

    ``box_format`` names the model's coordinates (``BOX_FORMATS``); ``image_size`` is the original
    (width, height), needed by "pixel" and "resized_pixel". Corners are reordered so x1 <= x2, y1 <= y2.
    """
    name, params = _parse_format(box_format)
    numbers, rule = find_box(text)
    if numbers is None:
        return None, rule
    x1, y1, x2, y2 = BOX_FORMATS[name](numbers, image_size, **params)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), rule


def parse_box(text: str, box_format: str = "norm1", image_size: tuple[int, int] | None = None) -> Box | None:
    """``read_box`` without the rule."""
    return read_box(text, box_format, image_size)[0]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when either has no area."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def grounding_scores(predictions: Sequence[Box | None], references: Sequence[Sequence[float]],
                     threshold: float = 0.5) -> dict[str, float]:
    """acc@threshold and mean IoU (0-100) over all samples; an unparsed box scores IoU 0."""
    if len(predictions) != len(references):
        raise ValueError(f"grounding_scores: {len(predictions)} predictions but {len(references)} references")
    ious = [iou(p, r) if p is not None else 0.0 for p, r in zip(predictions, references)]
    n = len(ious)
    return {
        f"acc@{threshold:g}": 100.0 * sum(v >= threshold for v in ious) / n if n else 0.0,
        "mean_iou": 100.0 * sum(ious) / n if n else 0.0,
        "unparsed": float(sum(p is None for p in predictions)),
    }
