"""ScienceQA (problems.json + pid_splits.json): lettered multiple choice, prompted as in LLaVA."""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import image_inside, nonempty, question_sample, read_json
from mmtune.eval.metrics.choice import LETTERS, MC_INSTRUCTION, format_choices


def read_scienceqa(root: str | Path, split: str = "test", images_only: bool = False) -> list[Sample]:
    """Problems of ``split`` (any key of pid_splits.json: train/val/test, minitest, trainval, ...).

    Images live under each problem's own split, root/images/<problem's split>/<pid>/<image>, so the
    composite splits (minitest, trainval, minival) find theirs. ``images_only`` keeps only problems
    with an image (ScienceQA-IMG).
    """
    root = Path(root)
    problems_json, splits_json = root / "problems.json", root / "pid_splits.json"
    problems = read_json(problems_json, "ScienceQA problems")
    splits = read_json(splits_json, "ScienceQA splits")
    if split not in splits:
        raise ValueError(f"ScienceQA: split {split!r} not in {splits_json} ({', '.join(splits)})")
    out = []
    for pid in splits[split]:
        if pid not in problems:
            raise ValueError(f"ScienceQA: {splits_json} lists problem {pid!r} under {split!r} but {problems_json} "
                             "has no such problem; use the two files of the same release")
        p = problems[pid]
        where = f"{problems_json}: problem {pid}"
        if p.get("image") and not p.get("split"):
            raise ValueError(f"{where}: has an image but no 'split' naming its images/<split>/ folder")
        image = image_inside(root / "images", Path(p["split"], pid, p["image"]), where) if p.get("image") else None
        if images_only and image is None:
            continue
        context = f"Context: {p['hint']}\n" if p.get("hint") else ""
        prompt = f"{context}{p['question']}\n{format_choices(p['choices'])}\n{MC_INSTRUCTION}"
        out.append(question_sample(pid, prompt, image, choices=list(p["choices"]), answer=LETTERS[p["answer"]],
                                   subject=p.get("subject")))
    expected = f"problem ids listed under {split!r} in {splits_json}" + (" with an image" if images_only else "")
    return nonempty(out, f"ScienceQA split {split!r}", expected)
