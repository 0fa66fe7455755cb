"""World tasks: the registry contract, split disjointness, references per kind, the tokenizer."""
import hashlib
import io

import numpy as np
import pytest

from mmtune.eval.tasks.kinds import TASK_KINDS
from mmtune.world.language import PLURALS
from mmtune.world.tasks import SPLITS, WORLD_TASKS, downstream_tasks, seen_tasks, text_only_instructions
from mmtune.world.tokenizer import world_tokenizer

# Reference keys each kind's evaluation reads from Sample.meta.
REQUIRED_META = {
    "caption": {"captions"}, "vqa": {"answers", "answer"}, "exact_match": {"answer"},
    "mme": {"answer", "category", "image_id"}, "pope": {"answer", "pope_split"},
    "multiple_choice": {"answer", "choices"}, "counting": {"answer"}, "grounding": {"answer", "box"},
    "yesno": {"answer"}, "describe": {"answer", "captions", "objects"},
}


def image_hash(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return hashlib.sha1(buf.getvalue()).hexdigest()


def test_registry_has_seen_and_downstream_tasks():
    # describe is pre-trained on only by a world variant's bases (recipes.pretrain.pretrain_samples)
    assert {t.name for t in seen_tasks()} == {"caption", "vqa", "gqa", "ocr", "mme", "pope", "describe"}
    assert {t.name for t in downstream_tasks()} == {"sciqa", "iconqa", "refcoco", "itm", "rsvqa"}
    for task in WORLD_TASKS.values():
        assert task.kind in TASK_KINDS and 0 <= task.chance <= 100


@pytest.mark.parametrize("name", sorted(WORLD_TASKS))
def test_samples_carry_the_references_of_their_kind(name):
    task = WORLD_TASKS[name]
    samples = task.samples("val", 12, seed=1)
    assert len(samples) == 12 and len({s.id for s in samples}) == 12
    for s in samples:
        assert REQUIRED_META[task.kind] <= set(s.meta) and s.meta["task"] == name
        assert [m["role"] for m in s.messages] == ["user", "assistant"]
        assert s.num_image_parts == len(s.images) == 1
        assert s.text_of("assistant") == [s.meta["answer"]]
        if task.kind == "vqa":
            assert len(s.meta["answers"]) == 10 and s.meta["answers"].count(s.meta["answer"]) == 8
        if task.kind == "multiple_choice":
            assert len(s.meta["choices"]) == 4 and s.meta["answer"] in "ABCD"
        if task.kind == "grounding":
            x1, y1, x2, y2 = s.meta["box"]
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            assert s.meta["answer"] == "[" + ", ".join(f"{v:.2f}" for v in s.meta["box"]) + "]"


def test_mme_and_pope_pair_one_yes_and_one_no_per_image():
    for name in ("mme", "pope"):
        samples = WORLD_TASKS[name].samples("test", 40)
        by_image = {}
        for s in samples:
            by_image.setdefault(s.meta["image_id"], []).append(s.meta["answer"])
        assert all(sorted(a) == ["no", "yes"] for a in by_image.values())
    pope = WORLD_TASKS["pope"].samples("test", 60)
    assert {s.meta["pope_split"] for s in pope} == {"random", "popular", "adversarial"}


def test_binary_downstream_tasks_are_balanced():
    for name in ("itm", "rsvqa"):
        answers = [s.meta["answer"] for s in WORLD_TASKS[name].samples("train", 200)]
        assert 0.35 < answers.count("yes") / len(answers) < 0.65


@pytest.mark.parametrize("name", ["vqa", "pope", "refcoco", "rsvqa"])
def test_no_image_is_shared_across_splits(name):
    hashes = {split: {image_hash(s.images[0]) for s in WORLD_TASKS[name].samples(split, 60)} for split in SPLITS}
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]


def test_tokenizer_round_trips_every_world_text_without_unknown_tokens():
    tok = world_tokenizer()
    samples = [s for t in WORLD_TASKS.values() for s in t.samples("train", 30, seed=2)] + text_only_instructions(30)
    for s in samples:
        for role in ("user", "assistant"):
            for text in s.text_of(role):
                ids = tok(text, add_special_tokens=False).input_ids
                assert tok.unk_token_id not in ids, (s.id, text)
                assert tok.decode(ids) == text


def test_generation_prompt_is_a_token_prefix_of_the_training_text():
    """The answer's first token is the same at training and at generation time."""
    from mmtune.world.tokenizer import world_processor

    processor = world_processor()
    s = WORLD_TASKS["vqa"].samples("train", 1)[0]
    full = processor.tokenizer(processor.apply_chat_template(s.messages, tokenize=False)).input_ids
    prompt = processor.tokenizer(
        processor.apply_chat_template(s.prompt_messages(), tokenize=False, add_generation_prompt=True)).input_ids
    assert full[: len(prompt)] == prompt
    answer = processor.tokenizer.decode(full[len(prompt):], skip_special_tokens=True).strip()
    assert answer == s.meta["answer"]


def test_text_only_instructions_have_no_images():
    samples = text_only_instructions(10, seed=0)
    assert all(not s.images and s.num_image_parts == 0 for s in samples)
    assert samples[0].messages == text_only_instructions(1, seed=0)[0].messages


def test_grounding_chance_is_the_best_constant_box():
    import numpy as np

    from mmtune.world.tasks.downstream import GROUNDING_CHANCE

    boxes = np.array([s.meta["box"] for s in WORLD_TASKS["refcoco"].samples("test", 600)])

    def hit_rate(b):
        iw = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
        ih = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
        inter = iw * ih
        union = (b[2] - b[0]) * (b[3] - b[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
        return 100 * (inter / union >= 0.5).mean()

    # Objects sit in 16 px cells, so the best constant box is a cell-centred one of an object size.
    best = max(hit_rate(np.array([c - w / 2, r - w / 2, c + w / 2, r + w / 2]))
               for c in (0.125, 0.375, 0.625, 0.875) for r in (0.125, 0.375, 0.625, 0.875) for w in (0.16, 0.2))
    assert abs(best - GROUNDING_CHANCE) < 3


def test_mme_position_answers_are_true_to_the_scene_and_have_no_side_shortcut():
    # The first version always named the left object first, so "left" meant "yes" without looking.
    import random
    import re

    from mmtune.world.tasks.seen import make_mme

    rng, yes_sides = random.Random(0), set()
    checked = 0
    while checked < 40:
        made = make_mme(rng)
        if made is None or made[1][0].meta["category"] != "position":
            continue
        scene, items = made
        for item in items:
            a, side, b = re.match(r"Is the (\w+) on the (\w+) of the (\w+)\?", item.prompt).groups()
            xa, xb = (next(o.centre[0] for o in scene.objects if o.kind == k) for k in (a, b))
            assert item.answer == ("yes" if (xa < xb) == (side == "left") else "no"), item.prompt
            if item.answer == "yes":
                yes_sides.add(side)
        checked += 1
    assert yes_sides == {"left", "right"}


def test_text_only_yes_no_and_count_answers_are_true():
    import re

    from mmtune.world.scenes import COLOURS, SHAPES

    members = {"colour": set(COLOURS), "shape": set(SHAPES)}
    kinds = set()
    for s in text_only_instructions(300, seed=0):
        prompt, answer = s.messages[0]["content"][0]["text"], s.messages[1]["content"][0]["text"]
        if m := re.match(r"Is (\w+) a (\w+)\? Please answer yes or no\.$", prompt):
            kinds.add(("word", answer))
            assert answer == ("yes" if m[1] in members[m[2]] else "no"), prompt
        elif m := re.match(r"Does this list contain a (\w+)\? List: ([\w ]+)\. Please answer yes or no\.$", prompt):
            kinds.add(("list", answer))
            assert answer == ("yes" if set(m[2].split()) & members[m[1]] else "no"), prompt
        elif m := re.match(r"How many words are in this list\? List: ([\w ]+)\.\n", prompt):
            kinds.add(("count", "n"))
            assert answer == str(len(m[1].split())), prompt
        elif m := (re.match(r"How many (?P<plural>\w+) are in this list\? List: (?P<words>[\w ]+)\.\n", prompt)
                   or re.match(r"List: (?P<words>[\w ]+)\. How many (?P<plural>\w+) are there\?\n", prompt)):
            kinds.add(("count", "shape", prompt.startswith("List")))
            shape = next(k for k, v in PLURALS.items() if v == m["plural"])
            assert answer == str(m["words"].split().count(shape)), prompt
    assert kinds == {("word", "yes"), ("word", "no"), ("list", "yes"), ("list", "no"), ("count", "n"),
                     ("count", "shape", False), ("count", "shape", True)}


def test_text_instructions_beside_images_have_one_unrelated_scene_each():
    from mmtune.world.tasks import text_instructions_beside_images
    from mmtune.world.tasks.text import text_instruction

    samples = text_instructions_beside_images(20, seed=0)
    assert all(len(s.images) == 1 and s.images[0].size == (64, 64) for s in samples)
    assert len({image_hash(s.images[0]) for s in samples}) == 20
    # the question and answer are a text instruction's, untouched by the image
    import random
    prompt, answer = text_instruction(random.Random("text-image|0|3"), weights=(1, 1, 4, 1, 1))
    assert samples[3].messages[0]["content"][-1]["text"] == prompt and samples[3].meta["answer"] == answer


def _object_columns(scene, image):
    """Each object's horizontal centre measured on the pixels: the mean x of its colour's pixels
    inside its box (objects never overlap, so a box holds one object)."""
    from mmtune.world.scenes import COLOURS

    pixels = np.asarray(image)
    out = {}
    for o in scene.objects:
        x1, y1, x2, y2 = o.box
        ys, xs = np.nonzero((pixels[y1:y2, x1:x2] == COLOURS[o.colour]).all(axis=-1))
        out[id(o)] = x1 + xs.mean()
    return out


def test_gqa_answers_are_true_to_the_pixels_and_every_kind_is_asked():
    import random
    import re

    from mmtune.world.scenes import COLOURS, render
    from mmtune.world.tasks.seen import GQA_KINDS, make_gqa

    rng, asked = random.Random(0), set()
    for _ in range(400):
        if (made := make_gqa(rng)) is None:
            continue
        scene, [item] = made
        image = render(scene)
        pixels = np.asarray(image)
        x = _object_columns(scene, image)
        left_half = {id(o): x[id(o)] < 32 for o in scene.objects}

        def colour_of(o):  # the colour of the object's pixels, whatever the scene says
            x1, y1, x2, y2 = o.box
            found = {c for c, rgb in COLOURS.items() if (pixels[y1:y2, x1:x2] == rgb).all(axis=-1).any()}
            assert len(found) == 1
            return found.pop()

        def area(o):
            x1, y1, x2, y2 = o.box
            return int((pixels[y1:y2, x1:x2] == COLOURS[o.colour]).all(axis=-1).sum())

        q, kind = item.prompt.split("\n")[0], item.meta["question_type"]
        if m := re.match(r"On which side of the image is the (\w+)\?$", q):
            [o] = [o for o in scene.objects if o.kind == m[1]]  # the shape is unique in the scene
            assert item.answer == ("left" if left_half[id(o)] else "right"), q
            asked.add(("side", kind))
        elif m := re.match(r"(What colour is the object|Which shape is) on the (\w+) side of the image\?$", q):
            [o] = [o for o in scene.objects if left_half[id(o)] == (m[2] == "left")]  # the only one there
            assert item.answer == (colour_of(o) if m[1].startswith("What") else o.kind), q
            asked.add(("on_side", kind))
        elif m := re.match(r"Is the (\w+) (\w+) or (\w+)\?$", q):
            [o] = [o for o in scene.objects if o.kind == m[1]]
            assert item.answer == colour_of(o) and item.answer in (m[2], m[3]) and m[2] != m[3], q
            asked.add(("choose", kind))
        elif m := re.match(r"Is the (\w+) object an? (\w+) or an? (\w+)\?$", q):
            [o] = [o for o in scene.objects if colour_of(o) == m[1]]
            assert item.answer == o.kind and item.answer in (m[2], m[3]) and m[2] != m[3], q
            asked.add(("choose_shape", kind))
        else:
            size, shape = re.match(r"What colour is the (small|large) (\w+)\?$", q).groups()
            small, large = sorted((o for o in scene.objects if o.kind == shape), key=area)
            assert area(small) < area(large)
            assert item.answer == colour_of(small if size == "small" else large), q
            asked.add(("size", kind))
    assert asked == {(k, k) for k in GQA_KINDS}
