"""Grounding (referring expressions): box parsing per coordinate convention, IoU, acc@0.5."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Box = tuple[float, float, float, float]  # x1, y1, x2, y2

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _from_norm1(v: Sequence[float], size: tuple[int, int] | None) -> Box:
    return tuple(float(x) for x in v)  # type: ignore[return-value]


def _from_norm1000(v: Sequence[float], size: tuple[int, int] | None) -> Box:
    return tuple(float(x) / 1000.0 for x in v)  # type: ignore[return-value]


def _from_pixel(v: Sequence[float], size: tuple[int, int] | None) -> Box:
    if size is None:
        raise ValueError("pixel boxes need the image size (width, height) to be normalized")
    w, h = size
    return (v[0] / w, v[1] / h, v[2] / w, v[3] / h)


# ``ModelFamily.box_format`` -> conversion of the four numbers a model writes to [0, 1] coordinates.
BOX_FORMATS: dict[str, Callable[[Sequence[float], tuple[int, int] | None], Box]] = {
    "norm1": _from_norm1,
    "norm1000": _from_norm1000,
    "pixel": _from_pixel,
}


def parse_box(text: str, box_format: str = "norm1", image_size: tuple[int, int] | None = None) -> Box | None:
    """The first four numbers in ``text`` as a normalized [0, 1] box (x1, y1, x2, y2), or None.

    Covers "[0.1, 0.2, 0.5, 0.6]" and Qwen2-VL's "(100,200),(500,600)"; corners are reordered so
    x1 <= x2 and y1 <= y2.
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"unknown box format {box_format!r}; known: {', '.join(BOX_FORMATS)}")
    numbers = [float(x) for x in _NUMBER.findall(text)[:4]]
    if len(numbers) < 4:
        return None
    x1, y1, x2, y2 = BOX_FORMATS[box_format](numbers, image_size)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


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
