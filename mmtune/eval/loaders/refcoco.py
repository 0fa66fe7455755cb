"""RefCOCO / RefCOCO+ / RefCOCOg: referring expressions -> boxes, from refs JSON + COCO instances.

The release ships ``refs(unc).p``, a pickle; unpickling an untrusted file can run arbitrary code,
so we only read a JSON conversion of it (the same list of ref dicts) placed beside it.
"""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import image_inside, question_sample, read_json

GROUNDING_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {sentence}"


def read_refcoco(root: str | Path, split: str = "val", split_by: str = "unc") -> list[Sample]:
    """One sample per referring sentence of ``split``; ``meta["box"]`` is [x1, y1, x2, y2] in [0, 1].

    Splits are the release's own: RefCOCO and RefCOCO+ (unc) have val/testA/testB, RefCOCOg (umd)
    val/test; a split the refs do not hold is an error listing the ones they do.
    """
    root = Path(root)
    refs_json = root / f"refs({split_by}).json"
    pickle = root / f"refs({split_by}).p"
    if not refs_json.exists() and pickle.exists():
        raise FileNotFoundError(
            f"RefCOCO: found {pickle} but mmtune does not unpickle untrusted files; convert it once, in a "
            f"trusted environment, to {refs_json} (e.g. json.dump(pickle.load(open(p, 'rb')), open(j, 'w')))"
        )
    refs = read_json(refs_json, "RefCOCO refs (JSON conversion of the released pickle)")
    available = sorted({ref["split"] for ref in refs})
    if split not in available:
        raise ValueError(f"RefCOCO({split_by}): {refs_json} has no refs in split {split!r}; its splits are "
                         f"{', '.join(available) or 'none (empty file)'}; pass split= one of them")
    instances = read_json(root / "instances.json", "RefCOCO instances")
    images = {im["id"]: im for im in instances["images"]}
    boxes = {a["id"]: a["bbox"] for a in instances["annotations"]}
    out = []
    for ref in refs:
        if ref["split"] != split:
            continue
        where = f"{refs_json}: ref {ref['ref_id']}"
        if ref["image_id"] not in images or ref["ann_id"] not in boxes:
            raise ValueError(f"{where}: image {ref['image_id']} or annotation {ref['ann_id']} is not in "
                             f"{root / 'instances.json'}; use the instances.json of the same RefCOCO release")
        im = images[ref["image_id"]]
        w, h = im["width"], im["height"]
        x, y, bw, bh = boxes[ref["ann_id"]]
        box = [x / w, y / h, (x + bw) / w, (y + bh) / h]  # COCO's [x, y, width, height] in pixels
        image = image_inside(root / "images", im["file_name"], where)
        for k, sent in enumerate(ref["sentences"]):
            out.append(question_sample(f"{ref['ref_id']}_{k}", GROUNDING_PROMPT.format(sentence=sent["sent"]),
                                       image, box=box, image_size=(w, h), image_id=ref["image_id"]))
    return out
