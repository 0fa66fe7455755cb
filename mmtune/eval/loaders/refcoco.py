"""RefCOCO / RefCOCO+ / RefCOCOg: referring expressions -> boxes, from refs JSON + COCO instances.

The release ships ``refs(unc).p``, a pickle; unpickling an untrusted file can run arbitrary code,
so we only read a JSON conversion of it (the same list of ref dicts) placed beside it.
"""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import question_sample, read_json

GROUNDING_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {sentence}"


def read_refcoco(root: str | Path, split: str = "val", split_by: str = "unc") -> list[Sample]:
    """One sample per referring sentence of ``split``; ``meta["box"]`` is [x1, y1, x2, y2] in [0, 1]."""
    root = Path(root)
    refs_json = root / f"refs({split_by}).json"
    pickle = root / f"refs({split_by}).p"
    if not refs_json.exists() and pickle.exists():
        raise FileNotFoundError(
            f"RefCOCO: found {pickle} but mmtune does not unpickle untrusted files; convert it once, in a "
            f"trusted environment, to {refs_json} (e.g. json.dump(pickle.load(open(p, 'rb')), open(j, 'w')))"
        )
    refs = read_json(refs_json, "RefCOCO refs (JSON conversion of the released pickle)")
    instances = read_json(root / "instances.json", "RefCOCO instances")
    images = {im["id"]: im for im in instances["images"]}
    boxes = {a["id"]: a["bbox"] for a in instances["annotations"]}
    out = []
    for ref in refs:
        if ref["split"] != split:
            continue
        im = images[ref["image_id"]]
        w, h = im["width"], im["height"]
        x, y, bw, bh = boxes[ref["ann_id"]]
        box = [x / w, y / h, (x + bw) / w, (y + bh) / h]  # COCO's [x, y, width, height] in pixels
        for k, sent in enumerate(ref["sentences"]):
            out.append(question_sample(f"{ref['ref_id']}_{k}", GROUNDING_PROMPT.format(sentence=sent["sent"]),
                                       root / "images" / im["file_name"], box=box, image_size=(w, h),
                                       image_id=ref["image_id"]))
    return out
