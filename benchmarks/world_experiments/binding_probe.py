"""Why the world base does not learn fast binding: can its language model form an induction circuit
at all, and under which supervision? (docs/world_base.md, issue 17.)

    MMTUNE_HOME=... python benchmarks/world_experiments/binding_probe.py --base DIR --form FORM \
        [--steps 1500] [--out runs/binding_probe/FORM]

Each run tunes ``--base`` (LM + projector, batch 16, cosine lr 1e-3) on one kind of episode and then
scores 100 fresh episodes of k = 2 and k = 4 pairs whose names were bound in training (``train``) and
whose names never were (``held-out``): the last of k + 1 pairs repeats one of the first k, and the
probe is right when the model's most likely next token after the repeat is the name bound to it.

Forms (names from ``binding.TRAIN_NAMES``; the last 12 held out, never bound in training):

- ``text-answer``: "star dax. circle blicket. What is star?" as a user turn and four such questions
  answered as assistant turns: the loss falls on the answers only, as in all world pre-training.
- ``text-document``: the same bindings written as a document, "star dax. circle blicket. star dax.
  ...", 8-14 pairs over 2-4 shapes, every token of it in the loss, as a language model is pre-trained.
- ``image-document``: the document with each shape word replaced by an image of that shape (one
  object, any colour, cell and size) and each name written Frozen's way: "<image> this is a dax.".
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

FORMS = ("text-answer", "text-document", "image-document")
HELD_OUT = 12  # the last TRAIN_NAMES, never bound in the probe's training episodes


def names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from mmtune.world.tasks.binding import TRAIN_NAMES

    return TRAIN_NAMES[:-HELD_OUT], TRAIN_NAMES[-HELD_OUT:]


def bindings(rng: random.Random, pool: tuple[str, ...], k: int) -> dict[str, str]:
    from mmtune.world.scenes import SHAPES

    kinds = rng.sample(SHAPES, k)
    return dict(zip(kinds, rng.sample(pool, k)))


def episode(form: str, rng: random.Random, pool: tuple[str, ...], *, probe_k: int = 0):
    """(sample, the name the probe checks or None). Training episodes draw 2-4 bindings; a probe
    episode shows its ``probe_k`` bindings once each, then repeats one."""
    from mmtune.data.sample import Sample, assistant_turn, user_turn
    from mmtune.world.scenes import render, sample_scene
    from mmtune.world.tasks.binding import demonstration

    bound = bindings(rng, pool, probe_k or rng.randint(2, 4))
    kinds = list(bound)
    if probe_k:
        sequence = kinds + [rng.choice(kinds)]
    else:
        sequence = [rng.choice(kinds) for _ in range(rng.randint(8, 14) if form == "text-document" else rng.randint(5, 9))]
    if form == "text-answer":
        shown = " ".join(f"{kind} {bound[kind]}." for kind in kinds)
        queries = [sequence[-1]] if probe_k else [rng.choice(kinds) for _ in range(4)]
        messages = [user_turn(f"{shown} What is {queries[0]}?", n_images=0), assistant_turn(bound[queries[0]])]
        for kind in queries[1:]:
            messages += [user_turn(f"What is {kind}?", n_images=0), assistant_turn(bound[kind])]
        return Sample(id="probe", messages=messages, images=[], meta={}), bound[queries[0]] if probe_k else None
    if form == "text-document":
        text = " ".join(f"{kind} {bound[kind]}." for kind in sequence)
        return Sample(id="probe", messages=[user_turn("Write a sentence.", n_images=0), assistant_turn(text)],
                      images=[], meta={}), bound[sequence[-1]] if probe_k else None
    content, images = [], []
    for kind in sequence:
        content += [{"type": "image"}, {"type": "text", "text": f" {demonstration(bound[kind])} "}]
        images.append(render(sample_scene(rng, n_objects=(1, 1), word_prob=0.0, shapes=[kind])))
    messages = [user_turn("Write a sentence.", n_images=0), {"role": "assistant", "content": content}]
    return Sample(id="probe", messages=messages, images=images, meta={}), bound[sequence[-1]] if probe_k else None


def next_token_right(model, collator, tokenizer, sample, name: str, form: str) -> bool:
    """Teacher-forced: is ``name`` the most likely token where it is due (the last answer, or the
    name after the repeated pair's shape)?"""
    batch = collator([sample])
    ids = batch["input_ids"][0]
    target = tokenizer(" " + name, add_special_tokens=False)["input_ids"][-1]
    if form == "text-answer":  # the answer's first token (written without the space before it)
        at = (batch["labels"][0] != -100).nonzero().flatten()[0].item()
        target = ids[at].item()
        assert tokenizer.decode([target]).strip() == name, (tokenizer.decode([target]), name)
    else:
        at = (ids == target).nonzero().flatten()[-1].item()
    with torch.inference_mode():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, at - 1]
    return logits.argmax().item() == target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="a world base directory (mmtune pretrain prints it)")
    ap.add_argument("--form", required=True, choices=FORMS)
    ap.add_argument("--steps", type=int, default=1500, help="0: score --base as it is (e.g. a probe's final/)")
    ap.add_argument("--episodes", type=int, default=12000, help="training episodes (drawn once, then repeated)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="where the tuned model and probe.json go")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import LlavaForConditionalGeneration

    from mmtune.data.collate import SFTCollator
    from mmtune.recipes.sft import TrainingConfig, train_sft
    from mmtune.world.tokenizer import world_processor

    out = Path(args.out or f"runs/binding_probe/{args.form}")
    processor = world_processor()
    collator = SFTCollator(processor)
    model = LlavaForConditionalGeneration.from_pretrained(args.base)
    trained, held_out = names()
    start = time.perf_counter()
    if args.steps:
        samples = [episode(args.form, random.Random(f"probe-train|{i}"), trained)[0] for i in range(args.episodes)]
        training = TrainingConfig(lr=args.lr, max_steps=args.steps, batch_size=16, lr_scheduler="cosine",
                                  warmup_ratio=0.05, save_steps=0, logging_steps=50, report_to=[])
        model = train_sft(model, processor, samples, strategy="llm+projector", output_dir=out, training=training).model
    model.eval()
    scores = {}
    for split, pool in (("train", trained), ("held-out", held_out)):
        for k in (2, 4):
            right = sum(next_token_right(model, collator, processor.tokenizer, *episode(
                args.form, random.Random(f"probe-test|{split}|{k}|{i}"), pool, probe_k=k), args.form) for i in range(100))
            scores[f"{split}_k{k}"] = right
            print(f"{args.form} {split} k={k}: {right}% (chance {100 // k}%)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps({**vars(args), "scores": scores,
                                                 "seconds": round(time.perf_counter() - start, 1)}, indent=1))


if __name__ == "__main__":
    main()
