"""COCO captions (captions_<split>.json): one sample per image, all its captions as references."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import image_inside, nonempty, question_sample, read_json

CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."


def read_coco_captions(root: str | Path, split: str = "val2014") -> list[Sample]:
    """root/annotations/captions_<split>.json; images root/<split>/<file_name>."""
    root = Path(root)
    path = root / "annotations" / f"captions_{split}.json"
    data = read_json(path, "COCO captions")
    refs: dict[int, list[str]] = defaultdict(list)
    for a in data["annotations"]:
        refs[a["image_id"]].append(a["caption"])
    samples = [question_sample(str(im["id"]), CAPTION_PROMPT,
                               image_inside(root / split, im["file_name"], f"{path}: image {im['id']}"),
                               captions=refs[im["id"]], image_id=im["id"])
               for im in data["images"] if refs[im["id"]]]
    return nonempty(samples, f"COCO captions {path}", "'images' with captions in 'annotations'")
