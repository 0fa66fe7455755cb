"""Yes/no benchmarks in their released layouts: MME (category folders) and POPE (JSON lines)."""
from __future__ import annotations

import json
from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import question_sample, require

_IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")


def _image(folder: Path, stem: str, category: Path) -> Path:
    for suffix in _IMAGE_SUFFIXES:
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    raise FileNotFoundError(f"MME {category.name}: no image {stem}.jpg/.png in {folder}")


def _mme_lines(txt: Path) -> list[tuple[str | None, str, str]]:
    """(image name or None, question, answer) per line; 2 fields use the .txt's own stem."""
    out = []
    for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) == 2:
            out.append((None, fields[0], fields[1]))
        elif len(fields) >= 3:
            out.append((fields[0], fields[1], fields[2]))
        else:
            raise ValueError(f"{txt}:{n}: expected 'question<TAB>answer' or 'image<TAB>question<TAB>answer'")
    return out


def read_mme(root: str | Path) -> list[Sample]:
    """MME: root/<category>/ holds images with same-stem .txt files, or images/ +
    questions_answers_YN/; each .txt line is "question<TAB>Yes|No" (or "image<TAB>question<TAB>answer")."""
    root = require(Path(root), "MME benchmark folder")
    out: list[Sample] = []
    categories = sorted(p for p in root.iterdir() if p.is_dir())
    if not categories:
        raise FileNotFoundError(f"MME: no category folders (existence/, count/, ...) under {root}")
    for cat in categories:
        qa_dir = cat / "questions_answers_YN"
        txt_dir, image_dir = (qa_dir, cat / "images") if qa_dir.is_dir() else (cat, cat)
        for txt in sorted(txt_dir.glob("*.txt")):
            for k, (image_name, question, answer) in enumerate(_mme_lines(txt)):
                image = image_dir / image_name if image_name else _image(image_dir, txt.stem, cat)
                stem = Path(image_name).stem if image_name else txt.stem
                out.append(question_sample(f"{cat.name}/{stem}/{k}", question.strip(), image,
                                           category=cat.name, image_id=f"{cat.name}/{stem}",
                                           answer=answer.strip().lower()))
    return out


POPE_SPLITS = ("random", "popular", "adversarial")


def read_pope(root: str | Path, split: str = "random", image_folder: str = "val2014") -> list[Sample]:
    """POPE coco_pope_<split>.json (JSON lines: question_id, image, text, label); COCO images."""
    if split not in POPE_SPLITS:
        raise ValueError(f"POPE: unknown split {split!r}; use one of {', '.join(POPE_SPLITS)}")
    root = Path(root)
    path = require(root / f"coco_pope_{split}.json", "POPE questions")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON line ({e})") from e
            out.append(question_sample(f"{split}/{r['question_id']}", r["text"], root / image_folder / r["image"],
                                       answer=r["label"].strip().lower(), pope_split=split))
    return out
