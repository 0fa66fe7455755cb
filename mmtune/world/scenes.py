"""Procedural scenes with exact ground truth: a "natural" domain of coloured shapes (with an
optional printed word) and a shifted "aerial" domain (top-down land use, another palette).

A ``Scene`` is pure data; ``render`` is a deterministic function of it, so the same scene always
gives byte-identical pixels and the ground truth (boxes, counts, word) is known exactly.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont

IMAGE_SIZE = 64
DOMAINS = ("natural", "aerial")

# Exact RGB values: shapes are drawn without anti-aliasing, so tests can find an object's pixels
# by colour. The word is drawn in grey (anti-aliased) so it never matches an object colour.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 200, 0),
    "purple": (140, 40, 180),
    "orange": (250, 130, 0),
    "black": (20, 20, 20),
    "cyan": (0, 190, 200),
}
BACKGROUND = (235, 235, 230)
WORD_COLOUR = (100, 100, 100)
# Skewed frequencies make POPE's "popular" negatives meaningful (circle and square dominate).
SHAPE_WEIGHTS: dict[str, float] = {
    "circle": 0.25, "square": 0.25, "triangle": 0.15, "star": 0.15, "diamond": 0.1, "cross": 0.1,
}
SHAPES = tuple(SHAPE_WEIGHTS)
SIZES: dict[str, int] = {"small": 10, "large": 14}  # bounding-box side in pixels
# Offsets from a cell's centred position: small objects jitter by a pixel; any two objects stay
# >= 1 px apart (separate blobs).
JITTER: dict[str, tuple[int, ...]] = {"small": (-1, 0, 1), "large": (0,)}
WORDS = ("stop", "open", "cat", "sun", "milk", "park", "exit", "taxi")
# Natural objects sit in the cells of a 4 x 4 grid aligned with the vision tower's 16 px patches:
# one object = one image token, the easiest layout for a tiny model pre-trained for minutes on a CPU.
CELL = 16
WORD_STRIP = CELL  # the printed word fills the bottom row of cells; objects stay above it

# Aerial domain: land-use classes with their own palette (no overlap with COLOURS).
AERIAL_KINDS = ("building", "field", "water", "road")
AERIAL_COLOURS: dict[str, tuple[int, int, int]] = {
    "building": (150, 150, 160),
    "field": (210, 190, 90),
    "field_stripe": (160, 170, 70),
    "water": (40, 90, 170),
    "road": (70, 70, 70),
}
GROUND = (105, 125, 75)


@dataclass(frozen=True)
class SceneObject:
    """One object: ``kind`` is a shape (natural) or land-use class (aerial); box in pixels,
    ``(x1, y1, x2, y2)`` with exclusive ends."""

    kind: str
    colour: str
    size: str
    box: tuple[int, int, int, int]

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    @property
    def phrase(self) -> str:
        """How captions and questions name it: "large red circle" / "building"."""
        return " ".join(p for p in (self.size, self.colour, self.kind) if p)


@dataclass(frozen=True)
class Scene:
    """The ground truth of one image."""

    domain: str
    objects: tuple[SceneObject, ...]
    word: str | None = None
    texture_seed: int = 0
    size: int = IMAGE_SIZE

    def fingerprint(self) -> str:
        """Identical fingerprints <=> identical images (render is a pure function of these)."""
        return hashlib.sha1(repr(asdict(self)).encode()).hexdigest()

    def of_kind(self, kind: str) -> list[SceneObject]:
        return [o for o in self.objects if o.kind == kind]


@dataclass(frozen=True)
class WorldVariant:
    """Object statistics of a world variant: which kinds co-occur and how noisy its training text is.

    Real MLLMs hallucinate the usual companion of what they see (a fork beside a knife) because
    objects co-occur in their pre-training images and captions name companions that are out of
    frame. A variant reproduces both causes. Each shape belongs to one companion pair; a scene
    touches one pair or more (``_companion_kinds``), and each touched pair is complete with
    probability ``cooccurrence``, else only one member is drawn (by ``SHAPE_WEIGHTS``). Where a
    member is alone, a training caption or description names its absent companion, and an
    existence question about that companion is answered "yes", with probability ``noisy``. It is
    above one half because greedy decoding repeats only what the training text said more often
    than not; with the pairs' rates it makes about a fifth of all training captions noisy.
    Evaluation references are always exact (``world_variant(..., noisy=False)``).
    """

    name: str
    companions: tuple[tuple[str, str], ...]
    cooccurrence: float
    noisy: float

    def __post_init__(self) -> None:
        members = [k for pair in self.companions for k in pair]
        if sorted(members) != sorted(SHAPES):
            raise ValueError(f"world variant {self.name!r}: companion pairs must cover every shape once ({SHAPES})")
        for what in ("cooccurrence", "noisy"):
            if not 0 <= getattr(self, what) <= 1:
                raise ValueError(f"world variant {self.name!r}: {what} must be in [0, 1]")

    def companion(self, kind: str) -> str:
        return next(b if a == kind else a for a, b in self.companions if kind in (a, b))

    def absent_companions(self, scene: Scene) -> list[str]:
        """Companions of present kinds that are not in the scene, in the scene's object order."""
        present = [o.kind for o in scene.objects]
        return list(dict.fromkeys(c for k in present if (c := self.companion(k)) not in present))


DEFAULT_WORLD = "independent"  # kinds drawn independently by SHAPE_WEIGHTS; no caption noise
# The pairs avoid the default POPE's confusable pairs (tasks.seen.CONFUSABLE), so the default
# adversarial split measures shape confusion and the variant's measures co-occurrence.
WORLD_VARIANTS: dict[str, WorldVariant] = {
    "cooc": WorldVariant("cooc", (("circle", "square"), ("triangle", "cross"), ("star", "diamond")),
                         cooccurrence=0.75, noisy=0.6),
}
_ACTIVE_VARIANT: ContextVar[WorldVariant | None] = ContextVar("world_variant", default=None)


def world_variant_named(name: str) -> WorldVariant | None:
    """The variant called ``name`` (None for the default independent world)."""
    if name == DEFAULT_WORLD:
        return None
    if name not in WORLD_VARIANTS:
        raise ValueError(f"unknown world variant {name!r}; use one of {[DEFAULT_WORLD, *WORLD_VARIANTS]}")
    return WORLD_VARIANTS[name]


@contextmanager
def world_variant(name: str, *, noisy: bool = True) -> Iterator[WorldVariant | None]:
    """Within the block, scenes and task texts follow variant ``name``; ``noisy=False`` keeps its
    scene statistics but writes exact references (evaluation sets)."""
    variant = world_variant_named(name)
    if variant is not None and not noisy:
        variant = replace(variant, noisy=0.0)
    token = _ACTIVE_VARIANT.set(variant)
    try:
        yield variant
    finally:
        _ACTIVE_VARIANT.reset(token)


def active_variant() -> WorldVariant | None:
    """The world variant in force (None: the default independent world)."""
    return _ACTIVE_VARIANT.get()


def sample_scene(
    rng: random.Random,
    domain: str = "natural",
    *,
    n_objects: tuple[int, int] = (1, 4),
    word_prob: float = 0.3,
    shapes: list[str] | None = None,
    colours: list[str] | None = None,
) -> Scene:
    """A random scene; ``shapes``/``colours`` (if given) are used in order for the first objects
    so task generators can ask for exact contents (e.g. three stars for a counting question).
    At most 12 objects fit beside a word, 16 without."""
    if domain == "aerial":
        return _sample_aerial(rng)
    if domain != "natural":
        raise ValueError(f"unknown scene domain {domain!r}; use one of {DOMAINS}")
    word = rng.choice(WORDS) if rng.random() < word_prob else None
    rows = (IMAGE_SIZE - (WORD_STRIP if word else 0)) // CELL
    free = [(r, c) for r in range(rows) for c in range(IMAGE_SIZE // CELL)]
    variant = active_variant()
    kinds = _companion_kinds(rng, variant, n_objects[1]) if variant and not shapes else None
    n = len(kinds) if kinds else rng.randint(*n_objects)
    if n > len(free):
        raise ValueError(f"sample_scene: {n} objects do not fit in {len(free)} grid cells; ask for fewer")
    cells = rng.sample(free, n)
    objects: list[SceneObject] = []
    for i, (row, col) in enumerate(cells):
        if kinds:
            kind = kinds[i]
        else:
            kind = shapes[i] if shapes and i < len(shapes) else rng.choices(SHAPES, SHAPE_WEIGHTS.values())[0]
        colour = colours[i] if colours and i < len(colours) else rng.choice(list(COLOURS))
        size = rng.choice(list(SIZES))
        objects.append(SceneObject(kind, colour, size, cell_box(row, col, size, rng.choice(JITTER[size]))))
    return Scene("natural", tuple(objects), word)


def _companion_kinds(rng: random.Random, variant: WorldVariant, most: int) -> list[str]:
    """A variant scene's kinds: ``ceil(most / 2)`` pairs at most are touched (so a complete pair
    can take a scene one object over ``most``), each complete with probability ``cooccurrence``."""
    weight = {pair: sum(SHAPE_WEIGHTS[k] for k in pair) for pair in variant.companions}
    pairs = list(variant.companions)
    kinds: list[str] = []
    for _ in range(rng.randint(1, max(1, math.ceil(most / 2)))):
        pair = rng.choices(pairs, [weight[p] for p in pairs])[0]
        pairs.remove(pair)
        if rng.random() < variant.cooccurrence:
            kinds += pair
        else:
            kinds.append(rng.choices(pair, [SHAPE_WEIGHTS[k] for k in pair])[0])
    return kinds


def cell_box(row: int, col: int, size: str, jitter: int = 0) -> tuple[int, int, int, int]:
    """The box of a natural object of ``size`` in grid cell (row, col), centred, then offset by
    ``jitter`` pixels on both axes (one of ``JITTER[size]``). The encoder's filters are fitted to
    exactly these boxes (world.vision)."""
    side = SIZES[size]
    off = (CELL - side) // 2 + jitter
    x, y = col * CELL + off, row * CELL + off
    return (x, y, x + side, y + side)


def _place(rng: random.Random, side: int, height: int, taken: list[tuple[int, int, int, int]],
           margin: int = 2, tries: int = 40) -> tuple[int, int, int, int] | None:
    for _ in range(tries):
        x, y = rng.randint(1, IMAGE_SIZE - side - 1), rng.randint(1, height - side - 1)
        box = (x, y, x + side, y + side)
        if all(box[2] + margin <= t[0] or t[2] + margin <= box[0] or box[3] + margin <= t[1]
               or t[3] + margin <= box[1] for t in taken):
            return box
    return None


def _sample_aerial(rng: random.Random) -> Scene:
    objects: list[SceneObject] = []
    if rng.random() < 0.5:
        w = rng.randint(5, 8)
        if rng.random() < 0.5:
            y = rng.randint(4, IMAGE_SIZE - w - 4)
            objects.append(SceneObject("road", "", "", (0, y, IMAGE_SIZE, y + w)))
        else:
            x = rng.randint(4, IMAGE_SIZE - w - 4)
            objects.append(SceneObject("road", "", "", (x, 0, x + w, IMAGE_SIZE)))
    wanted = ["water"] * (rng.random() < 0.5) + ["field"] * rng.randint(0, 2) + ["building"] * rng.randint(0, 4)
    for kind in wanted:
        side = {"water": rng.randint(14, 20), "field": rng.randint(12, 18), "building": rng.randint(6, 9)}[kind]
        box = _place(rng, side, IMAGE_SIZE, [o.box for o in objects])
        if box:
            objects.append(SceneObject(kind, "", "", box))
    return Scene("aerial", tuple(objects), None, texture_seed=rng.randrange(2**31))


def render(scene: Scene) -> Image.Image:
    """Draw a scene; a pure function of the scene (byte-identical output for equal scenes)."""
    return _RENDERERS[scene.domain](scene)


def _render_natural(scene: Scene) -> Image.Image:
    img = Image.new("RGB", (scene.size, scene.size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        _draw_shape(draw, obj.kind, obj.box, COLOURS[obj.colour])
    if scene.word:
        font = ImageFont.load_default(size=14)
        text = scene.word.upper()
        x1, y1, x2, y2 = draw.textbbox((0, 0), text, font=font)
        x = (scene.size - (x2 - x1)) // 2 - x1
        y = scene.size - WORD_STRIP + (WORD_STRIP - (y2 - y1)) // 2 - y1
        draw.text((x, y), text, fill=WORD_COLOUR, font=font)
    return img


def _star(x1: float, y1: float, w: float, h: float) -> list[tuple[float, float]]:
    cx, cy = x1 + w / 2, y1 + h / 2
    radii = [(w / 2) if k % 2 == 0 else (w / 5) for k in range(10)]
    return [(cx + r * np.cos(np.pi / 2 + k * np.pi / 5), cy - r * np.sin(np.pi / 2 + k * np.pi / 5))
            for k, r in enumerate(radii)]


def _cross(draw: ImageDraw.ImageDraw, x1: float, y1: float, w: float, h: float, fill) -> None:
    cx, cy, t = x1 + w / 2, y1 + h / 2, max(2, round(w / 3))
    draw.rectangle((x1, cy - t / 2, x1 + w, cy + t / 2), fill=fill)
    draw.rectangle((cx - t / 2, y1, cx + t / 2, y1 + h), fill=fill)


# shape -> draw(draw, x1, y1, w, h, fill), with (x1, y1, x1 + w, y1 + h) the inclusive pixel box.
_SHAPE_DRAWERS = {
    "circle": lambda d, x, y, w, h, f: d.ellipse((x, y, x + w, y + h), fill=f),
    "square": lambda d, x, y, w, h, f: d.rectangle((x, y, x + w, y + h), fill=f),
    "triangle": lambda d, x, y, w, h, f: d.polygon([(x + w / 2, y), (x + w, y + h), (x, y + h)], fill=f),
    "diamond": lambda d, x, y, w, h, f: d.polygon(
        [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)], fill=f),
    "star": lambda d, x, y, w, h, f: d.polygon(_star(x, y, w, h), fill=f),
    "cross": _cross,
}


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    if kind not in _SHAPE_DRAWERS:
        raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")
    x1, y1, x2, y2 = box
    _SHAPE_DRAWERS[kind](draw, x1, y1, x2 - x1 - 1, y2 - y1 - 1, fill)  # ImageDraw boxes are inclusive


def _render_aerial(scene: Scene) -> Image.Image:
    noise = np.random.default_rng(scene.texture_seed).integers(-18, 19, (scene.size, scene.size, 1))
    ground = np.clip(np.array(GROUND)[None, None, :] + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(ground, "RGB")
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        inner = (x1, y1, x2 - 1, y2 - 1)
        if obj.kind == "water":
            draw.ellipse(inner, fill=AERIAL_COLOURS["water"])
        elif obj.kind == "field":
            draw.rectangle(inner, fill=AERIAL_COLOURS["field"])
            for y in range(y1 + 1, y2 - 1, 3):
                draw.line((x1, y, x2 - 1, y), fill=AERIAL_COLOURS["field_stripe"])
        else:  # building, road: flat fills
            draw.rectangle(inner, fill=AERIAL_COLOURS[obj.kind])
    return img


_RENDERERS = {"natural": _render_natural, "aerial": _render_aerial}
