"""Model cards: the ``README.md`` of a tuned or exported checkpoint, in the Hugging Face layout.

The card opens with the Hub's metadata block (``---`` YAML: ``base_model``, ``library_name``, ``tags``,
``datasets``, and ``model-index`` for measured scores), then says how the model was made (base model,
strategy, data sources and sizes, training settings) and what it scores. Scores are kept in
``model-index`` (the Hub's place for evaluation results), so a later measurement (``mmtune eval``, the
bench) merges into the card and re-renders its scores section; the rest of the card is left as written.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmtune.files import atomic_write_text

CARD_FILE = "README.md"
SCORES_HEADING = "## Scores"
PIPELINE_TAG = "image-text-to-text"


@dataclass(frozen=True)
class Score:
    """One measured score: ``metric`` = ``value`` on ``dataset`` (an eval task or a bench target);
    ``task`` groups it (e.g. "seen set", "bench: E/F/O"); ``base`` is the base model's score, if measured."""

    dataset: str
    metric: str
    value: float
    task: str = "evaluation"
    base: float | None = None

    def to_index(self) -> dict[str, Any]:
        metric = {"type": self.metric, "value": round(float(self.value), 4)}
        if self.base is not None:
            metric["name"] = f"{self.metric} (base {self.base:.2f})"
        return {"task": {"type": PIPELINE_TAG, "name": self.task}, "dataset": {"name": self.dataset, "type": self.dataset},
                "metrics": [metric]}

    @classmethod
    def from_index(cls, result: Mapping[str, Any]) -> list[Score]:
        base = None
        out = []
        for metric in result.get("metrics", []):
            name = str(metric.get("name") or "")
            if "(base " in name:
                base = float(name.rsplit("(base ", 1)[1].rstrip(")"))
            out.append(cls(result["dataset"]["name"], metric["type"], float(metric["value"]),
                           result.get("task", {}).get("name", "evaluation"), base))
        return out


def read_card(model_dir: str | Path) -> tuple[dict[str, Any], str]:
    """(metadata, body) of ``model_dir/README.md``; ({}, "") when it has no card."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return {}, ""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}, text
    head, sep, body = text[4:].partition("\n---\n")
    if not sep:
        raise ValueError(f"{path}: the metadata block opened by '---' is never closed; fix or delete the file")
    try:
        metadata = yaml.safe_load(head) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: the metadata block is not valid YAML ({e}); fix or delete the file") from e
    return metadata, body.lstrip("\n")


def _render(metadata: Mapping[str, Any], body: str) -> str:
    return "---\n" + yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=True) + "---\n\n" + body


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _scores_section(scores: Sequence[Score]) -> str:
    if not scores:
        return f"{SCORES_HEADING}\n\nNot measured yet: `mmtune eval --model <this folder> --tasks ...` adds them here.\n"
    rows = [(s.task, s.dataset, s.metric, f"{s.value:.2f}", "" if s.base is None else f"{s.base:.2f}") for s in scores]
    return (f"{SCORES_HEADING}\n\n" + _table(("measured as", "dataset", "metric", "score", "base model"), rows)
            + "\n\nE = target score gain over the base model, F = mean change on the seen (general) sets "
              "(negative = forgetting), O = E + F; scores 0-100 (CIDEr-D x 100).\n")


def write_card(model_dir: str | Path, *, name: str, base_model: str | None, strategy: str | None, recipe: str,
               library_name: str = "transformers", data: Sequence[tuple[str, int]] = (),
               training: Mapping[str, Any] | None = None, extra: Sequence[tuple[str, Any]] = (),
               scores: Sequence[Score] = ()) -> Path:
    """Write ``model_dir/README.md``: metadata block, how the model was made, and ``scores`` plus any the
    folder's card already holds (a re-export keeps them). ``data``: (source, samples used) per source;
    ``extra``: more (setting, value) rows, e.g. the methods against forgetting."""
    old_meta, _ = read_card(model_dir)
    kept = [s for r in old_meta.get("model-index", [{}])[0].get("results", []) for s in Score.from_index(r)]
    metadata: dict[str, Any] = {}
    if base_model:
        metadata["base_model"] = base_model
    metadata.update({"library_name": library_name, "pipeline_tag": PIPELINE_TAG,
                     "tags": ["mmtune", recipe] + ([strategy.split("(")[0].split("+")[0]] if strategy else [])})
    if data:
        metadata["datasets"] = [source for source, _ in data]
    body = [f"# {name}\n",
            f"Tuned with mmtune ({recipe}) from `{base_model or 'an unrecorded base model'}`"
            + (f" with the strategy `{strategy}`." if strategy else ".")]
    if data:
        body.append("\n## Training data\n\n" + _table(("source", "samples used"), data))
    settings = [(k, v) for k, v in (training or {}).items() if v not in (None, [], {})] + list(extra)
    if settings:
        body.append("\n## Training settings\n\n" + _table(("setting", "value"), [(k, f"`{v}`") for k, v in settings]))
    text = "\n".join(body) + "\n\n"
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, _render(metadata, text + _scores_section([])))
    return add_scores(model_dir, [*kept, *scores], name=name)


def add_scores(model_dir: str | Path, scores: Sequence[Score], *, name: str | None = None) -> Path:
    """Merge ``scores`` into the card of ``model_dir`` (a newer score of the same dataset, metric and kind
    replaces the older) and re-render its scores section; a folder without a card gets a short one."""
    model_dir = Path(model_dir)
    metadata, body = read_card(model_dir)
    if not metadata and not body:
        metadata = {"library_name": "transformers", "pipeline_tag": PIPELINE_TAG, "tags": ["mmtune"]}
        body = f"# {model_dir.resolve().name}\n\n"
    index = metadata.get("model-index") or [{"name": name or model_dir.resolve().name, "results": []}]
    merged = {(s.task, s.dataset, s.metric): s
              for r in index[0].get("results", []) for s in Score.from_index(r)}
    merged.update({(s.task, s.dataset, s.metric): s for s in scores})
    if merged:
        index[0]["results"] = [s.to_index() for s in merged.values()]
        metadata["model-index"] = index
    head = body.split(SCORES_HEADING, 1)[0].rstrip("\n")
    path = model_dir / CARD_FILE
    atomic_write_text(path, _render(metadata, head + "\n\n" + _scores_section(list(merged.values()))))
    return path
