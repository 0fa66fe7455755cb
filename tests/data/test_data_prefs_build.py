"""Preference construction on the data layer: image corruptions for mDPO and hallucination
injection from COCO-format instance annotations."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from PIL import Image

from mmtune.data.corrupt import corrupt_image, corrupt_pairs, crop_box, diffusion_alpha_bar
from mmtune.data.inject import (
    absent_object,
    describe_objects,
    inject_object,
    injected_pairs,
    plural,
    read_coco_instances,
)
from mmtune.data.preferences import Preference, read_preferences, write_preferences
from mmtune.data.sample import user_turn


def gradient(size: int = 64) -> Image.Image:
    """R = 4x, G = 4y: a pixel's colour says where it came from."""
    x, y = np.meshgrid(np.arange(size), np.arange(size))
    return Image.fromarray(np.stack([4 * x, 4 * y, np.full_like(x, 100)], -1).astype(np.uint8), "RGB")


# --- corruptions -------------------------------------------------------------------------------

def test_crop_keeps_one_to_twenty_percent_of_the_area_in_the_allowed_ratios():
    rng = random.Random(0)
    for _ in range(300):
        x1, y1, x2, y2 = crop_box(224, 224, rng)
        w, h = x2 - x1, y2 - y1
        assert 0 <= x1 < x2 <= 224 and 0 <= y1 < y2 <= 224
        # rounding w and h to whole pixels moves the area by at most (w + h) / 2 + 1/4 pixels
        slack = ((w + h) / 2 + 0.25) / 224 ** 2
        assert 0.01 - slack <= w * h / 224 ** 2 <= 0.2 + slack
        assert 3 / 4 - 1 / min(w, h) <= w / h <= 4 / 3 + 1 / min(w, h)


def test_crop_box_falls_back_to_the_centred_crop_when_no_draw_fits():
    # scale 2-3 never fits: torchvision's fallback is the whole image when its ratio is allowed,
    # else the largest centred crop of the nearest allowed ratio (here 4/3 of a 40 x 10 image).
    assert crop_box(10, 10, random.Random(0), scale=(2, 3)) == (0, 0, 10, 10)
    assert crop_box(40, 10, random.Random(0), scale=(2, 3)) == (13, 0, 26, 10)


def test_crop_output_is_the_box_enlarged_to_the_image_size():
    image = gradient()
    out, record = corrupt_image(image, "crop", seed=3, key="a")
    assert out.size == image.size
    x1, y1, x2, y2 = record["box"]
    r, g = np.asarray(out)[..., 0].astype(int), np.asarray(out)[..., 1].astype(int)
    # bilinear resizing stays within the box's own colour range (4 per pixel)
    assert 4 * x1 - 4 <= r.min() and r.max() <= 4 * (x2 - 1) + 4
    assert 4 * y1 - 4 <= g.min() and g.max() <= 4 * (y2 - 1) + 4
    assert record["method"] == "crop" and record["scale"] == [0.01, 0.2]


def test_corruptions_are_seeded_per_key_and_deterministic():
    image = gradient()
    for method in ("crop", "mask", "noise"):
        a, ra = corrupt_image(image, method, seed=1, key="pair-1")
        b, rb = corrupt_image(image, method, seed=1, key="pair-1")
        c, _ = corrupt_image(image, method, seed=1, key="pair-2")
        d, _ = corrupt_image(image, method, seed=2, key="pair-1")
        assert a.tobytes() == b.tobytes() and ra == rb
        assert a.tobytes() != c.tobytes() and a.tobytes() != d.tobytes()


def test_mask_paints_the_drawn_cells_with_the_mean_colour_and_leaves_the_rest():
    image = gradient()
    out, record = corrupt_image(image, "mask", seed=0, key="k", fraction=0.5, grid=4)
    before, after = np.asarray(image), np.asarray(out)
    fill = before.reshape(-1, 3).mean(0).round()
    assert len(record["cells"]) == 8
    for cell in range(16):
        r, c = divmod(cell, 4)
        block = after[16 * r:16 * (r + 1), 16 * c:16 * (c + 1)]
        if cell in record["cells"]:
            assert (block == fill).all()
        else:
            assert (block == before[16 * r:16 * (r + 1), 16 * c:16 * (c + 1)]).all()


def test_noise_follows_the_vcd_forward_diffusion():
    # Golden values: VCD vcd_utils/vcd_add_noise.py (DAMO-NLP-SG/VCD, commit 039af55) schedule run
    # in torch 2.13 float32: alphas_prod[t] = cumprod(1 - (sigmoid(linspace(-6, 6, 1000)) * (0.5e-2 - 1e-5) + 1e-5))
    for step, golden in ((0, 0.9999776482582092), (250, 0.9783856868743896), (500, 0.7447987198829651),
                         (999, 0.08124923706054688)):
        assert diffusion_alpha_bar(step) == pytest.approx(golden, abs=2e-6)
    # Step 0 by hand: beta_0 = sigmoid(-6) * 0.00499 + 1e-5 = 0.0024726232 * 0.00499 + 1e-5
    assert diffusion_alpha_bar(0) == pytest.approx(1 - (0.0024726232 * 0.00499 + 1e-5), abs=1e-9)
    # On mid-grey (x0 = 0 after scaling) the output's spread is sqrt(1 - abar) * 127.5 grey levels.
    grey = Image.new("RGB", (128, 128), (127, 127, 127))
    out, record = corrupt_image(grey, "noise", seed=0, key="g", step=250)
    expected = math.sqrt(1 - diffusion_alpha_bar(250)) * 127.5
    assert np.asarray(out, dtype=float).std() == pytest.approx(expected, rel=0.05)
    assert record["step"] == 250


def test_unknown_corruption_and_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown image corruption 'blur'"):
        corrupt_image(gradient(), "blur")
    with pytest.raises(ValueError, match="step must be in"):
        corrupt_image(gradient(), "noise", step=1000)


def _pair(i: int, image) -> Preference:
    return Preference(id=f"p/{i}", messages=[user_turn("Describe the image in detail.")], images=[image],
                      chosen="a red circle.", rejected="a red circle and a star.", meta={"construction": {"method": "injected"}})


def test_corrupt_pairs_saves_each_image_beside_the_pairs_and_records_it(tmp_path):
    source = tmp_path / "src.png"
    gradient().save(source)
    prefs = [_pair(i, str(source)) for i in range(3)]
    out = corrupt_pairs(prefs, tmp_path / "out" / "corrupted", "crop", seed=7, relative_to=tmp_path / "out")
    again = corrupt_pairs(prefs[::-1], tmp_path / "again", "crop", seed=7)[::-1]
    for pref, other in zip(out, again):
        record = pref.meta["image_corruption"]
        saved = Image.open(tmp_path / "out" / record["image"])
        assert not record["image"].startswith("/") and record["seed"] == 7 and record["key"] == pref.id
        assert saved.tobytes() == corrupt_image(str(source), "crop", seed=7, key=pref.id)[0].tobytes()
        assert saved.tobytes() == Image.open(other.meta["image_corruption"]["image"]).tobytes()  # order-free
        assert pref.chosen == "a red circle." and pref.meta["construction"] == {"method": "injected"}
    write_preferences(tmp_path / "out" / "pairs.jsonl", out)
    back = read_preferences(tmp_path / "out" / "pairs.jsonl")
    assert [p.meta["image_corruption"] for p in back] == [p.meta["image_corruption"] for p in out]


# --- injection from COCO instances ---------------------------------------------------------------

CATEGORIES = ["person", "dog", "dining table", "fork", "cup", "car"]


def write_instances(path, images: dict[int, list[str]]) -> None:
    cats = [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(CATEGORIES)]
    ids = {n: i + 1 for i, n in enumerate(CATEGORIES)}
    anns = [{"id": k, "image_id": image, "category_id": ids[name], "bbox": [0, 0, 1, 1], "iscrowd": 0}
            for k, (image, name) in enumerate((im, n) for im, names in images.items() for n in names)]
    path.write_text(json.dumps({"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in images],
                                "categories": cats, "annotations": anns}))


# Fork appears beside a dining table in 3 images, a cup in 1; person is the most frequent category.
SCENES = {1: ["dining table", "fork", "person"], 2: ["dining table", "fork"], 3: ["dining table", "fork", "cup"],
          4: ["dining table", "cup"], 5: ["person", "dog"], 6: ["person", "car"], 7: ["person", "person", "dog"],
          8: ["dining table"]}


@pytest.fixture
def annotations(tmp_path):
    write_instances(tmp_path / "instances.json", SCENES)
    return read_coco_instances(tmp_path / "instances.json")


def test_instances_give_present_categories_counts_and_rankings(annotations):
    assert dict(annotations.present[7]) == {"person": 2, "dog": 1}
    assert annotations.frequency()["person"] == 4 and annotations.frequency()["fork"] == 3
    assert annotations.cooccurrence()["dining table"] == {"fork": 3, "cup": 2, "person": 1}


def test_absent_object_follows_popes_three_samplings(annotations):
    present = {"dining table"}
    rng = random.Random(0)
    assert absent_object(present, annotations, "adversarial", rng) == "fork"  # co-occurs 3 times
    assert absent_object(present, annotations, "popular", rng) == "person"  # in 4 images
    draws = {absent_object(present, annotations, "random", random.Random(s)) for s in range(40)}
    assert draws == set(CATEGORIES) - present
    with pytest.raises(ValueError, match="unknown negative sampling 'hard'"):
        absent_object(present, annotations, "hard", rng)


def test_inject_object_replaces_a_mention_keeping_article_and_number():
    rng = random.Random(0)
    text, record = inject_object("A man eats an apple.", {"person"}, "elephant", rng, {"person": ["man"]})
    assert text == "An elephant eats an apple." and record["replaced"] == "person" and record["said"] == "man"
    text, _ = inject_object("Two dogs sleep on a couch.", {"dog"}, "cat", rng)
    assert text == "Two cats sleep on a couch."
    text, _ = inject_object("There are two people at a table.", {"person"}, "wine glass", rng)
    assert text == "There are two wine glasses at a table."
    text, record = inject_object("Nothing named here.", {"dog"}, "umbrella", rng)
    assert text == "Nothing named here. There is also an umbrella in the image."
    assert record == {"type": "object", "object": "umbrella", "appended": "There is also an umbrella in the image."}


def test_plural_rules():
    assert [plural(n) for n in ("person", "bus", "wine glass", "sandwich", "skis", "sheep", "knife", "box")] == [
        "people", "buses", "wine glasses", "sandwiches", "skis", "sheep", "knives", "boxes"]


def test_describe_objects_lists_the_annotations():
    assert describe_objects({"person": 2, "dog": 1}) == "The image shows a dog and two people."
    assert describe_objects({"apple": 1}) == "The image shows an apple."


def test_injected_pairs_reject_a_response_naming_an_absent_object(annotations, tmp_path):
    captions = {1: ["A person at a dining table."], 2: ["A fork on a dining table."], 5: ["A person walks a dog."]}
    prefs = injected_pairs(annotations, tmp_path, captions=captions, seed=0)
    assert sorted(p.id for p in prefs) == ["coco-1", "coco-2", "coco-5"]
    for pref in prefs:
        image_id = int(pref.id.split("-")[1])
        present = set(annotations.present[image_id])
        injected = pref.meta["construction"]["injected"][0]
        assert pref.chosen == captions[image_id][0]
        assert injected["object"] not in present and injected["object"] in CATEGORIES
        assert plural(injected["object"]) in pref.rejected or injected["object"] in pref.rejected.lower()
        assert pref.meta["construction"]["method"] == "injected" and pref.images == [str(tmp_path / f"{image_id:012d}.jpg")]
    # without captions the chosen side is built from the annotations themselves
    listed = injected_pairs(annotations, tmp_path, n=2, sampling="popular", seed=1)
    assert len(listed) == 2
    for pref in listed:
        image_id = int(pref.id.split("-")[1])
        assert pref.chosen == describe_objects(annotations.present[image_id])


def test_injected_pairs_refuse_images_outside_the_folder(tmp_path):
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "../../etc/x.jpg"}], "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
        "annotations": [{"id": 0, "image_id": 1, "category_id": 1}]}))
    with pytest.raises(ValueError, match="escapes the image folder"):
        injected_pairs(read_coco_instances(tmp_path / "instances.json"), tmp_path / "images")


def test_bad_instances_files_are_named(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="no 'categories' list"):
        read_coco_instances(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg"}], "categories": [],
                                                 "annotations": [{"id": 9, "image_id": 1, "category_id": 4}]}))
    with pytest.raises(ValueError, match="annotation 0 \\(id 9\\)"):
        read_coco_instances(tmp_path / "b.json")
