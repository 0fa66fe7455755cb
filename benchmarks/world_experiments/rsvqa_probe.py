"""Can the quick base's frozen image features express rsvqa's answers? Linear probes per question.

rsvqa (aerial scenes, yes/no presence of building / field / water / road, and "more buildings than
fields?") is learnt slowly by every tuning strategy. This script separates the two possible causes:
the features the language model receives do not carry the answer (then no tuning of the projector
or LM can recover it), or they do and the tuning is slow. For each question it fits a logistic
regression on the frozen vision tower's patch features (mean-pooled, max-pooled, all 16 patches)
and on the projector's output, on ``--train`` scenes, and scores it on ``--test`` held-out scenes.

Controls: the same probes for natural-scene presence (POPE-like, per shape), and a probe on each
patch's mean pixel colour (the information the image itself holds). Variants (``--variants``)
re-render the same aerial scenes with one bounded change (flat ground, natural background, the
natural palette) and probe the unchanged encoder on them: which task change would make the
features express the answers, without re-pretraining.

    MMTUNE_HOME=/work/mmtune_home OMP_NUM_THREADS=1 python benchmarks/world_experiments/rsvqa_probe.py
    ... rsvqa_probe.py --train 200 --variants default --features "projector: mean,projector: 16 patches"

``--train`` sets how many scenes a read-out is fitted on: the bench's 1000 rsvqa training samples
ask each of the five questions of about 200 scenes.

Prints a markdown table of balanced accuracy (%, chance 50) per question and feature set, then per
rendering how strongly the encoder's designed channels answer a patch by what it holds.
"""
from __future__ import annotations

import argparse
import random

import numpy as np
import torch

AERIAL_QUESTIONS = ("building", "field", "water", "road", "compare")
# Bounded re-renderings of the aerial domain: (ground RGB or None for the default, texture
# amplitude, kind -> RGB overrides). "natural palette": kinds in natural colours (darker than the
# natural background, which the encoder's shape filters look for) on the natural background.
VARIANTS = {
    "default": (None, 18, {}),
    "flat ground": (None, 0, {}),
    "natural background": ((235, 235, 230), 0, {}),
    "natural palette": ((235, 235, 230), 0, {"building": (20, 20, 20), "field": (240, 200, 0),
                                             "field_stripe": (240, 200, 0), "water": (30, 60, 220),
                                             "road": (140, 40, 180)}),
}


def render_aerial(scene, ground, texture: int, palette: dict):
    """``scenes._render_aerial`` with the ground colour, texture amplitude and palette given."""
    from PIL import Image, ImageDraw

    from mmtune.world import scenes

    colours = {**scenes.AERIAL_COLOURS, **palette}
    ground = np.array(scenes.GROUND if ground is None else ground)
    noise = np.random.default_rng(scene.texture_seed).integers(-texture, texture + 1, (scene.size, scene.size, 1))
    img = Image.fromarray(np.clip(ground[None, None, :] + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        inner = (x1, y1, x2 - 1, y2 - 1)
        if obj.kind == "water":
            draw.ellipse(inner, fill=colours["water"])
        elif obj.kind == "field":
            draw.rectangle(inner, fill=colours["field"])
            for y in range(y1 + 1, y2 - 1, 3):
                draw.line((x1, y, x2 - 1, y), fill=colours["field_stripe"])
        else:
            draw.rectangle(inner, fill=colours[obj.kind])
    return img


def aerial_labels(scene) -> list[int]:
    counts = {k: len(scene.of_kind(k)) for k in ("building", "field", "water", "road")}
    return [int(counts[k] > 0) for k in ("building", "field", "water", "road")] + [int(counts["building"] > counts["field"])]


@torch.no_grad()
def feature_sets(model, images) -> dict[str, np.ndarray]:
    """Per image: the vision tower's patch features (what the projector reads), pooled and whole,
    the projector's output likewise, and each patch's mean normalised colour (the pixel control)."""
    from mmtune.world.vision import _normalised

    pixels = torch.from_numpy(np.stack([_normalised(im) for im in images]).transpose(0, 3, 1, 2)).float()
    out = model.model.get_image_features(pixel_values=pixels)
    vision = out.hidden_states[-1][:, 1:]  # vision_feature_layer -1, CLS dropped ("default" strategy)
    projected = torch.stack(list(out.pooler_output))
    n, _, h, w = pixels.shape
    cell = h // 4
    patch_colour = pixels.reshape(n, 3, 4, cell, 4, cell).mean((3, 5)).flatten(1)
    sets = {"pixels: patch mean colour": patch_colour}
    for name, x in (("vision", vision), ("projector", projected)):
        sets[f"{name}: mean"] = x.mean(1)
        sets[f"{name}: max"] = x.max(1).values
        sets[f"{name}: 16 patches"] = x.flatten(1)
    return {k: v.double().numpy() for k, v in sets.items()}


@torch.no_grad()
def patch_response(model, scene_list, images) -> str:
    """How strongly the encoder answers what a patch holds: the mean norm of the designed content
    channels (shape, size and colour filters) per patch holding one kind only, or nothing, and the
    share of patches where a colour unit fires (output above half its design value)."""
    from mmtune.world.vision import COLOUR_OUT, CONTENT_CHANNELS, _normalised

    pixels = torch.from_numpy(np.stack([_normalised(im) for im in images]).transpose(0, 3, 1, 2)).float()
    hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
    # The colour units' outputs follow the content channels, the position codes (one-hot column and
    # row, two ramps) and the anchor (world.vision.init_feature_extractor).
    first_unit = CONTENT_CHANNELS + 2 * 4 + 2 + 1
    fired = (hidden[..., first_unit:first_unit + 8].max(-1).values > COLOUR_OUT / 2).float().mean().item()
    norms: dict[str, list[float]] = {}
    cell = images[0].size[0] // 4
    for i, scene in enumerate(scene_list):
        for p in range(16):
            x, y = p % 4 * cell, p // 4 * cell
            kinds = {o.kind for o in scene.objects if o.box[0] < x + cell and x < o.box[2] and o.box[1] < y + cell and y < o.box[3]}
            if len(kinds) <= 1:
                norms.setdefault(next(iter(kinds), "nothing"), []).append(hidden[i, p, :CONTENT_CHANNELS].norm().item())
    cells = ", ".join(f"{k} {np.mean(v):.2f}" for k, v in sorted(norms.items()))
    return f"content-channel norm per patch: {cells}; colour unit fires on {100 * fired:.0f}% of patches"


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return 50.0 * sum(float((pred[y == c] == c).mean()) for c in (0, 1))


def probe(x_train, y_train, x_test, y_test, l2s=(1e-4, 1e-3, 1e-2, 1e-1)) -> float:
    """Balanced test accuracy of an L2 logistic regression (full-batch L-BFGS on standardised
    features, class-weighted); the L2 weight is chosen on the last fifth of the training scenes."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xt, xs = (torch.from_numpy((x - mean) / std) for x in (x_train, x_test))
    yt = torch.from_numpy(y_train).double()
    if yt.min() == yt.max():
        return float("nan")
    cut = len(xt) * 4 // 5

    def fit(x, y, l2):
        w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        pos = y.mean()
        weight = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))
        opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none")).mean()
            loss = loss + l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach(), b.detach()

    def score(w, b, x, y):
        return balanced_accuracy(y.numpy() if torch.is_tensor(y) else y, ((x @ w + b) > 0).long().numpy())

    best = max(l2s, key=lambda l2: score(*fit(xt[:cut], yt[:cut], l2), xt[cut:], yt[cut:].long()))
    return score(*fit(xt, yt, best), xs, y_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=3000, help="training scenes per probe")
    ap.add_argument("--test", type=int, default=1000, help="held-out scenes per probe")
    ap.add_argument("--variants", default="default,flat ground,natural background,natural palette")
    ap.add_argument("--features", default="", help="comma-separated feature sets (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from mmtune.models import load_model
    from mmtune.recipes.pretrain import ensure_base_model
    from mmtune.world import scenes

    model = load_model(ensure_base_model(args.preset, args.seed)).model
    n = args.train + args.test
    rng = random.Random(f"rsvqa-probe-{args.seed}")
    aerial = [scenes.sample_scene(rng, "aerial") for _ in range(n)]
    natural = [scenes.sample_scene(rng) for _ in range(n)]
    rows: dict[str, dict[str, float]] = {}

    responses: list[str] = []

    def run(label: str, images, y: np.ndarray, questions) -> None:
        scene_list = aerial if label.startswith("aerial") else natural
        responses.append(f"{label}: {patch_response(model, scene_list[:300], images[:300])}")
        sets = feature_sets(model, images)
        wanted = [f for f in args.features.split(",") if f] or list(sets)
        for name in wanted:
            x = sets[name]
            for q, question in enumerate(questions):
                rows.setdefault(f"{label} | {question}", {})[name] = probe(
                    x[:args.train], y[:args.train, q], x[args.train:], y[args.train:, q])

    y_aerial = np.array([aerial_labels(s) for s in aerial])
    for variant in args.variants.split(","):
        ground, texture, palette = VARIANTS[variant]
        run(f"aerial, {variant}", [render_aerial(s, ground, texture, palette) for s in aerial], y_aerial, AERIAL_QUESTIONS)
    y_natural = np.array([[int(bool(s.of_kind(k))) for k in scenes.SHAPES] for s in natural])
    run("natural (control)", [scenes.render(s) for s in natural], y_natural, scenes.SHAPES)

    names = list(next(iter(rows.values())))
    print("| scenes | question | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for key, cells in rows.items():
        print(f"| {key} | " + " | ".join(f"{cells[name]:.1f}" for name in names) + " |")
    print(f"\nbalanced accuracy %, chance 50; {args.train} train / {args.test} held-out scenes, base {args.preset} seed {args.seed}")
    print("\n".join(responses))
    print("positive rate (aerial): " + ", ".join(f"{q} {100 * y_aerial[:, i].mean():.0f}%" for i, q in enumerate(AERIAL_QUESTIONS)))


if __name__ == "__main__":
    main()
