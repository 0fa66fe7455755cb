"""ScienceQA (problems.json + pid_splits.json): lettered multiple choice, prompted as in LLaVA."""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.eval.loaders.files import question_sample, read_json
from mmtune.eval.metrics.choice import LETTERS, MC_INSTRUCTION, format_choices


def read_scienceqa(root: str | Path, split: str = "test", images_only: bool = False) -> list[Sample]:
    """Problems of ``split``; images at root/images/<split>/<pid>/<image>. ``images_only`` keeps
    only problems with an image (ScienceQA-IMG)."""
    root = Path(root)
    problems = read_json(root / "problems.json", "ScienceQA problems")
    splits = read_json(root / "pid_splits.json", "ScienceQA splits")
    if split not in splits:
        raise ValueError(f"ScienceQA: split {split!r} not in {root / 'pid_splits.json'} ({', '.join(splits)})")
    out = []
    for pid in splits[split]:
        p = problems[pid]
        image = root / "images" / split / pid / p["image"] if p.get("image") else None
        if images_only and image is None:
            continue
        context = f"Context: {p['hint']}\n" if p.get("hint") else ""
        prompt = f"{context}{p['question']}\n{format_choices(p['choices'])}\n{MC_INSTRUCTION}"
        out.append(question_sample(pid, prompt, image, choices=list(p["choices"]), answer=LETTERS[p["answer"]],
                                   subject=p.get("subject")))
    return out
