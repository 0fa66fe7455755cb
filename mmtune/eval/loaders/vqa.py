"""Short-answer VQA sets in their released formats: VQAv2, OK-VQA, TextVQA, GQA, OCR-VQA."""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import question_sample, read_json, require


def coco_image(root: Path, split: str, image_id: int) -> Path:
    return root / split / f"COCO_{split}_{int(image_id):012d}.jpg"


def read_vqa_pair(root: Path, questions: str, annotations: str, split: str, name: str) -> list[Sample]:
    """VQAv2-format questions + annotations JSON; 10 human answers each, COCO images under ``split``."""
    qs = read_json(root / questions, f"{name} questions")["questions"]
    anns = {a["question_id"]: a for a in read_json(root / annotations, f"{name} annotations")["annotations"]}
    out = []
    for q in qs:
        ann = anns.get(q["question_id"])
        if ann is None:
            raise ValueError(f"{name}: question {q['question_id']} has no entry in {root / annotations}")
        out.append(question_sample(str(q["question_id"]), q["question"], coco_image(root, split, q["image_id"]),
                                   answers=[a["answer"] for a in ann["answers"]], image_id=q["image_id"],
                                   answer_type=ann.get("answer_type")))
    return out


def read_vqav2(root: str | Path, split: str = "val2014") -> list[Sample]:
    return read_vqa_pair(Path(root), f"v2_OpenEnded_mscoco_{split}_questions.json",
                         f"v2_mscoco_{split}_annotations.json", split, "VQAv2")


def read_okvqa(root: str | Path, split: str = "val2014") -> list[Sample]:
    return read_vqa_pair(Path(root), f"OpenEnded_mscoco_{split}_questions.json",
                         f"mscoco_{split}_annotations.json", split, "OK-VQA")


def read_textvqa(root: str | Path, split: str = "val") -> list[Sample]:
    """TextVQA_0.5.1_<split>.json (``data``: question, image_id, 10 answers); images in train_images/."""
    root = Path(root)
    data = read_json(root / f"TextVQA_0.5.1_{split}.json", "TextVQA")["data"]
    return [question_sample(str(d["question_id"]), d["question"], root / "train_images" / f"{d['image_id']}.jpg",
                            answers=list(d["answers"]), image_id=d["image_id"]) for d in data]


def read_gqa(root: str | Path, split: str = "testdev_balanced") -> list[Sample]:
    """GQA <split>_questions.json: {qid: {imageId, question, answer}}; images in images/."""
    root = Path(root)
    data = read_json(root / f"{split}_questions.json", "GQA questions")
    return [question_sample(str(qid), q["question"], root / "images" / f"{q['imageId']}.jpg",
                            answer=q["answer"], image_id=q["imageId"]) for qid, q in data.items()]


OCRVQA_SPLITS = {"train": 1, "val": 2, "test": 3}


def read_ocrvqa(root: str | Path, split: str = "test") -> list[Sample]:
    """OCR-VQA dataset.json: {image_id: {questions, answers, split (1/2/3)}}; images in images/."""
    root = Path(root)
    if split not in OCRVQA_SPLITS:
        raise ValueError(f"OCR-VQA: unknown split {split!r}; use one of {', '.join(OCRVQA_SPLITS)}")
    data = read_json(root / "dataset.json", "OCR-VQA")
    out = []
    for image_id, rec in data.items():
        if rec.get("split") != OCRVQA_SPLITS[split]:
            continue
        image = _with_any_extension(root / "images", image_id)
        for k, (q, a) in enumerate(zip(rec["questions"], rec["answers"])):
            out.append(question_sample(f"{image_id}_{k}", q, image, answer=a, image_id=image_id))
    return out


def _with_any_extension(folder: Path, stem: str) -> Path:
    """The downloader keeps each cover's original extension; default to .jpg when none is found."""
    found = sorted(folder.glob(f"{stem}.*")) if folder.exists() else []
    return found[0] if found else require(folder, "OCR-VQA images") / f"{stem}.jpg"
