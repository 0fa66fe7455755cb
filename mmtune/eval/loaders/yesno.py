"""Yes/no benchmarks in their released layouts: MME (category folders) and POPE (JSON lines)."""
from __future__ import annotations

import json
from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import image_inside, nonempty, question_sample, require

_IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")
MME_LAYOUT = ("<category>/ folders (existence/, count/, ...) each holding images with same-stem .txt files, "
              "or images/ + questions_answers_YN/, as in MME_Benchmark_release_version.zip")


def _image(folder: Path, stem: str, category: Path) -> Path:
    for suffix in _IMAGE_SUFFIXES:
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    raise FileNotFoundError(f"MME {category.name}: no image {stem}.jpg/.png in {folder}")


def _mme_lines(txt: Path) -> list[tuple[int, str | None, str, str]]:
    """(line number, image name or None, question, answer) per line; 2 fields use the .txt's own stem."""
    out = []
    for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) == 2:
            out.append((n, None, fields[0], fields[1]))
        elif len(fields) >= 3:
            out.append((n, fields[0], fields[1], fields[2]))
        else:
            raise ValueError(f"{txt}:{n}: expected 'question<TAB>answer' or 'image<TAB>question<TAB>answer'")
    return out


def _is_category(folder: Path) -> bool:
    """Question files beside images, or the images/ + questions_answers_YN/ pair; the release's
    eval_tool/ (result .txt files, no images) is not a category."""
    if (folder / "questions_answers_YN").is_dir():
        return True
    files = [p.suffix.lower() for p in folder.iterdir() if p.is_file()]
    return ".txt" in files and any(s in _IMAGE_SUFFIXES for s in files)


def _categories(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _is_category(p))


def mme_categories(root: Path) -> list[Path]:
    """The category folders under ``root`` or up to two folders below it (the zip's top folder
    holds the benchmark one level down), else an error naming the layout expected."""
    levels = [[root]]
    levels.append(sorted(p for p in root.iterdir() if p.is_dir()))
    levels.append(sorted(q for p in levels[1] for q in p.iterdir() if q.is_dir()))
    for folder in (f for level in levels for f in level):
        if found := _categories(folder):
            return found
    raise FileNotFoundError(f"MME: no category folders under {root} or the two folder levels below it; "
                            f"expected {MME_LAYOUT}")


def read_mme(root: str | Path) -> list[Sample]:
    """MME: <category>/ holds images with same-stem .txt files, or images/ + questions_answers_YN/;
    each .txt line is "question<TAB>Yes|No" (or "image<TAB>question<TAB>answer"). ``root`` may be
    the folder holding the categories or the zip's top folder above it."""
    root = require(Path(root), "MME benchmark folder")
    out: list[Sample] = []
    for cat in mme_categories(root):
        qa_dir = cat / "questions_answers_YN"
        txt_dir, image_dir = (qa_dir, cat / "images") if qa_dir.is_dir() else (cat, cat)
        for txt in sorted(txt_dir.glob("*.txt")):
            for k, (n, image_name, question, answer) in enumerate(_mme_lines(txt)):
                if image_name:
                    image, stem = image_inside(image_dir, image_name, f"{txt}:{n}"), Path(image_name).stem
                else:
                    image, stem = _image(image_dir, txt.stem, cat), txt.stem
                out.append(question_sample(f"{cat.name}/{stem}/{k}", question.strip(), image,
                                           category=cat.name, image_id=f"{cat.name}/{stem}",
                                           answer=answer.strip().lower()))
    return nonempty(out, f"MME {root}", f"question lines in the .txt files of {MME_LAYOUT}")


POPE_SPLITS = ("random", "popular", "adversarial")
_POPE_KEYS = ("question_id", "image", "text", "label")


def read_pope(root: str | Path, split: str = "random", image_folder: str = "val2014") -> list[Sample]:
    """POPE coco_pope_<split>.json (JSON lines: question_id, image, text, label); COCO images."""
    if split not in POPE_SPLITS:
        raise ValueError(f"POPE: unknown split {split!r}; use one of {', '.join(POPE_SPLITS)}")
    root = Path(root)
    path = require(root / f"coco_pope_{split}.json", "POPE questions")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not a JSON line ({e})") from e
        missing = [k for k in _POPE_KEYS if k not in r]
        if missing:
            raise ValueError(f"{path}:{n}: missing {', '.join(missing)}; a POPE line has {', '.join(_POPE_KEYS)}")
        where = f"{path}:{n} (question_id {r['question_id']})"
        out.append(question_sample(f"{split}/{r['question_id']}", r["text"],
                                   image_inside(root / image_folder, r["image"], where),
                                   answer=r["label"].strip().lower(), pope_split=split))
    return nonempty(out, f"POPE {path}", "one JSON object per line with " + ", ".join(_POPE_KEYS))
