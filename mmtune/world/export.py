"""Write world samples to disk as LLaVA JSON + PNG files, so the real data readers (and any
outside tool that reads LLaVA data) are exercised on world data."""
from __future__ import annotations

from pathlib import Path

from mmtune.data.sample import Sample
from mmtune.files import atomic_write_json

_LLAVA_SPEAKERS = {"user": "human", "assistant": "gpt", "system": "system"}


def _llava_value(message: dict) -> str:
    # LLaVA's convention: "<image>\n" before the text for each image part.
    return "".join("<image>\n" if p["type"] == "image" else p.get("text", "") for p in message["content"])


def to_llava_record(sample: Sample, image_paths: list[str]) -> dict:
    """One LLaVA record; ``meta`` keys become top-level keys, which the readers keep as meta."""
    record = {
        "id": sample.id,
        "conversations": [{"from": _LLAVA_SPEAKERS[m["role"]], "value": _llava_value(m)} for m in sample.messages],
    }
    if image_paths:
        record["image"] = image_paths[0] if len(image_paths) == 1 else image_paths
    return {**record, **{k: v for k, v in sample.meta.items() if k not in record}}


def export_llava(task: str, split: str, n: int, out_dir: str | Path, seed: int = 0) -> Path:
    """Write ``n`` samples of a world task to ``out_dir/<task>_<split>.json`` + ``out_dir/images/``."""
    from mmtune.world.tasks import get_world_task

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records, written = [], {}
    for sample in get_world_task(task).samples(split, n, seed):
        paths = []
        for image in sample.images:
            # MME/POPE pairs share one image: write it once.
            key = id(image)
            if key not in written:
                written[key] = f"images/{sample.meta.get('image_id', sample.id)}.png"
                image.save(out / written[key])
            paths.append(written[key])
        records.append(to_llava_record(sample, paths))
    return atomic_write_json(out / f"{task}_{split}.json", records)
