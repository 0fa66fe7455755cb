"""Short-answer VQA sets in their released formats: VQAv2, OK-VQA, TextVQA, GQA, OCR-VQA."""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import (
    first_existing,
    image_inside,
    nonempty,
    question_sample,
    read_json,
    require,
)


def read_vqa_pair(root: Path, questions: str, annotations: str, split: str, name: str) -> list[Sample]:
    """VQAv2-format questions + annotations JSON; 10 human answers each, COCO images of ``split``.

    Found flat (root/<file>, images root/<split>/) or in the VQA repository's own layout
    (root/Questions/, root/Annotations/, images root/Images/mscoco/<split>/).
    """
    q_path = first_existing([root / questions, root / "Questions" / questions], f"{name} questions")
    a_path = first_existing([root / annotations, root / "Annotations" / annotations], f"{name} annotations")
    repo_images = root / "Images" / "mscoco" / split
    image_dir = repo_images if q_path.parent.name == "Questions" and repo_images.exists() else root / split
    qs = read_json(q_path, f"{name} questions")["questions"]
    anns = {a["question_id"]: a for a in read_json(a_path, f"{name} annotations")["annotations"]}
    out = []
    for q in qs:
        ann = anns.get(q["question_id"])
        if ann is None:
            raise ValueError(f"{name}: question {q['question_id']} has no entry in {a_path}")
        image = image_dir / f"COCO_{split}_{int(q['image_id']):012d}.jpg"
        out.append(question_sample(str(q["question_id"]), q["question"], image,
                                   answers=[a["answer"] for a in ann["answers"]], image_id=q["image_id"],
                                   answer_type=ann.get("answer_type")))
    return nonempty(out, f"{name} {q_path}", "a 'questions' list with matching 'annotations'")


def read_vqav2(root: str | Path, split: str = "val2014") -> list[Sample]:
    return read_vqa_pair(Path(root), f"v2_OpenEnded_mscoco_{split}_questions.json",
                         f"v2_mscoco_{split}_annotations.json", split, "VQAv2")


def read_okvqa(root: str | Path, split: str = "val2014") -> list[Sample]:
    return read_vqa_pair(Path(root), f"OpenEnded_mscoco_{split}_questions.json",
                         f"mscoco_{split}_annotations.json", split, "OK-VQA")


def read_textvqa(root: str | Path, split: str = "val") -> list[Sample]:
    """TextVQA_0.5.1_<split>.json (``data``: question, image_id, 10 answers); images in train_images/.

    The test split ships without answers (it is scored on EvalAI's server), so it is refused here
    rather than loaded as samples no metric could score.
    """
    root = Path(root)
    path = root / f"TextVQA_0.5.1_{split}.json"
    data = read_json(path, "TextVQA")["data"]
    out = []
    for d in data:
        where = f"{path}: question {d.get('question_id')}"
        if "answers" not in d:
            raise ValueError(f"{where} has no 'answers'; the TextVQA {split!r} split is scored only on the EvalAI "
                             "server, use split='val' to score locally")
        out.append(question_sample(str(d["question_id"]), d["question"],
                                   image_inside(root / "train_images", f"{d['image_id']}.jpg", where),
                                   answers=list(d["answers"]), image_id=d["image_id"]))
    return nonempty(out, f"TextVQA {path}", "a 'data' list of questions")


def read_gqa(root: str | Path, split: str = "testdev_balanced") -> list[Sample]:
    """GQA <split>_questions.json: {qid: {imageId, question, answer}}; images in images/."""
    root = Path(root)
    path = root / f"{split}_questions.json"
    data = read_json(path, "GQA questions")
    out = [question_sample(str(qid), q["question"],
                           image_inside(root / "images", f"{q['imageId']}.jpg", f"{path}: question {qid}"),
                           answer=q["answer"], image_id=q["imageId"]) for qid, q in data.items()]
    return nonempty(out, f"GQA {path}", "{question id: {imageId, question, answer}}")


OCRVQA_SPLITS = {"train": 1, "val": 2, "test": 3}


def read_ocrvqa(root: str | Path, split: str = "test") -> list[Sample]:
    """OCR-VQA dataset.json: {image_id: {questions, answers, split (1/2/3)}}; images in images/."""
    root = Path(root)
    if split not in OCRVQA_SPLITS:
        raise ValueError(f"OCR-VQA: unknown split {split!r}; use one of {', '.join(OCRVQA_SPLITS)}")
    path = root / "dataset.json"
    data = read_json(path, "OCR-VQA")
    covers = _covers(root / "images")
    out = []
    for image_id, rec in data.items():
        if rec.get("split") != OCRVQA_SPLITS[split]:
            continue
        # The downloader keeps each cover's original extension; .jpg when none is on disk yet.
        image = image_inside(root / "images", covers.get(image_id, f"{image_id}.jpg"), f"{path}: image {image_id}")
        for k, (q, a) in enumerate(zip(rec["questions"], rec["answers"])):
            out.append(question_sample(f"{image_id}_{k}", q, image, answer=a, image_id=image_id))
    return nonempty(out, f"OCR-VQA {path}", f"records with \"split\": {OCRVQA_SPLITS[split]} ({split})")


def _covers(folder: Path) -> dict[str, str]:
    """Cover file name by stem, listed once (a per-image search is quadratic on 200k covers)."""
    return {p.stem: p.name for p in sorted(require(folder, "OCR-VQA images").iterdir(), reverse=True)}
