"""A self-contained HTML page for evaluation results: one file that opens offline in any browser.

Everything is inline (CSS, a few lines of JS that sort tables, images as ``data:`` URIs), so the page
needs no server, no network and no other file. The pieces here (page shell, sortable table,
thumbnails, answer reading) also build the bench's ``report.html``; ``eval_html`` is ``mmtune eval
--out``'s page: the scores and a few answers per task beside their image.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmtune.files import atomic_write_text

THUMBNAIL_PX = 64
SAMPLES_PER_TASK = 6

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4;cursor:pointer;user-select:none}td:first-child,th:first-child{text-align:left}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.note{color:#555;font-size:12px;max-width:1100px}.good{color:#176117}.bad{color:#a01818}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:300px}
.card img{float:left;margin:0 8px 4px 0;image-rendering:pixelated}.card ul{clear:both;margin:4px 0;padding-left:16px}
.curves{display:flex;flex-wrap:wrap;gap:8px}.curve{border:1px solid #eee;padding:4px}
img.figure{max-width:100%}code{background:#f4f4f4;padding:0 3px}
"""

# Sorts a table by the clicked header: numbers by each cell's data-v, text otherwise; marks the
# headers so a reader (and the browser test) sees the script ran.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var desc = !th.classList.contains("sorted-desc");
      Array.prototype.forEach.call(heads, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(desc ? "sorted-desc" : "sorted-asc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
        return desc ? -order : order;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  table.dataset.sortable = "ready";
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``: inline style and the table-sorting script, nothing fetched."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{SORT_JS}</script></body></html>\n")


def cell(text: str, value: Any = None, css: str = "") -> str:
    """A table cell showing ``text`` (already HTML) and sorting by ``value`` (default: the text)."""
    v = text if value is None else value
    return f"<td data-v=\"{esc(v)}\"{f' class={css!r}' if css else ''}>{text}</td>"


def sortable_table(headers: Sequence[str], rows: Sequence[str], attrs: str = "") -> str:
    """A table whose columns sort on a header click; ``rows`` are ``<tr>`` bodies built with ``cell``."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (f"<table class=\"sortable\"{attrs}><thead><tr>{head}</tr></thead><tbody>\n"
            + "\n".join(rows) + "\n</tbody></table>")


def png_data_uri(image: Any, max_px: int | None = THUMBNAIL_PX, colors: int | None = None) -> str | None:
    """``image`` (a PIL image or an image file) as a PNG ``data:`` URI, shrunk to ``max_px`` on its long
    side and reduced to ``colors`` palette entries when given; None when it cannot be read."""
    from PIL import Image

    try:
        img = image.copy() if isinstance(image, Image.Image) else Image.open(image)
        img = img.convert("RGB")
    except (OSError, ValueError):
        return None
    if max_px:
        img.thumbnail((max_px, max_px))
    if colors:
        img = img.quantize(colors)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail(sample: Any) -> str:
    """An ``<img>`` of a sample's first image, 64 px, or an empty string when it has none."""
    uri = png_data_uri(sample.images[0]) if sample is not None and sample.images else None
    return f"<img src=\"{uri}\" width=\"{THUMBNAIL_PX}\" alt=\"{esc(sample.id)}\">" if uri else ""


def question_of(sample: Any) -> str:
    """The user's words in a sample's last user turn."""
    texts = sample.text_of("user")
    return texts[-1] if texts else ""


def reference_of(sample: Any) -> str:
    """A sample's reference answer: its ``meta["answer"]``, else its assistant turn."""
    if "answer" in sample.meta:
        return str(sample.meta["answer"])
    texts = sample.text_of("assistant")
    return texts[-1] if texts else ""


def read_answers(path: Path) -> dict[str, dict[str, Any]]:
    """sample id -> its line in a ``<task>.samples.jsonl`` (empty when the file is absent)."""
    if not path.is_file():
        return {}
    lines = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["id"]: r for r in lines}


def mark(score: float | None) -> str:
    """✓ / ✗ for a per-sample score (half credit and corpus metrics show the number)."""
    if score is None:
        return ""
    if score >= 1.0:
        return "<span class=\"good\">✓</span>"
    return "<span class=\"bad\">✗</span>" if score <= 0.0 else f"{score:.2f}"


def eval_html(results: dict[str, dict[str, Any]], tasks: Sequence[Any], out_dir: str | Path,
              per_task: int = SAMPLES_PER_TASK) -> str:
    """The page of one ``mmtune eval`` run: the score table, then per task its first ``per_task``
    answers with image, question, reference and score."""
    out_dir = Path(out_dir)
    rows = []
    for name, r in results.items():
        counts, score, chance = r.get("counts", {}), r["score"], r.get("chance")
        rows.append(f"<tr data-task=\"{esc(name)}\">{cell(esc(name))}{cell(esc(r['metric']))}"
                    f"{cell(_num(score), score)}{cell(_num(chance), chance)}"
                    f"{cell(str(counts.get('samples', '')))}{cell(str(r.get('unparsed', '')))}</tr>")
    body = ["<h1>mmtune eval</h1>", sortable_table(["task", "metric", "score", "chance", "samples", "unparsed"], rows)]
    by_name = {t.name: t for t in tasks}
    for name in results:
        task = by_name.get(name)
        answers = read_answers(out_dir / f"{name}.samples.jsonl")
        if task is None or not answers:
            continue
        cards = []
        for sample in [s for s in task.samples if s.id in answers][:per_task]:
            a = answers[sample.id]
            cards.append(f"<div class=\"card\">{thumbnail(sample)}<b>{esc(question_of(sample))}</b><br>"
                         f"reference: <code>{esc(reference_of(sample))}</code><br>answer: <code>{esc(a.get('raw', ''))}"
                         f"</code> {mark(a.get('score'))}</div>")
        body += [f"<h2>{esc(name)}: answers</h2>", f"<div class=\"cards\">{''.join(cards)}</div>"]
    return page("mmtune eval", "\n".join(body))


def write_eval_html(results: dict[str, dict[str, Any]], tasks: Sequence[Any], out_dir: str | Path) -> Path:
    """``out_dir/report.html`` beside results.json (written atomically)."""
    return atomic_write_text(Path(out_dir) / "report.html", eval_html(results, tasks, out_dir))


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"
