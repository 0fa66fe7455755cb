"""The answer cache survives cut lines and garbage, never writes onto a cut line, is shared safely by
two processes, and keys a checkpoint by its content, not by the path it was loaded from."""
from __future__ import annotations

import json
import logging
import multiprocessing
import threading

import pytest

from mmtune.eval.cache import AnswerCache, exclusive_lock, model_fingerprint


def _line(key: str, raw: str = "yes") -> bytes:
    return json.dumps({"key": key, "raw": raw, "id": key}).encode() + b"\n"


def _cache_file(root, body: bytes):
    path = root / "m" / "t.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_bad_lines_are_skipped_reported_and_removed(tmp_path, caplog):
    body = b"".join([
        _line("a"),
        b"\x00\xff\xfe binary garbage\n",  # line 2
        b'["key", "raw"]\n',  # 3: a JSON list
        b'{"key": "n", "raw": 3}\n',  # 4: a numeric raw
        b'{"key": "m"}\n',  # 5: no raw
        b"\n",  # blank lines are not errors
        _line("b", "no"),
        b'{"key": "c", "ra',  # 8: cut by a kill, no newline
    ])
    path = _cache_file(tmp_path, body)
    with caplog.at_level(logging.WARNING, logger="mmtune.eval.cache"):
        cache = AnswerCache(tmp_path, "m", "t")
    assert (cache.get("a"), cache.get("b"), len(cache)) == ("yes", "no", 2)
    assert cache.get("n") is None and cache.get("m") is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == (f"{path}: skipped 5 unreadable lines (2, 3, 4, 5, 8), removed from the file; "
                       "their answers will be generated again")
    # The file now holds the readable answers only, with their extra fields.
    assert _lines(path) == [{"key": "a", "raw": "yes", "id": "a"}, {"key": "b", "raw": "no", "id": "b"}]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmtune.eval.cache"):
        assert len(AnswerCache(tmp_path, "m", "t")) == 2
    assert not caplog.records


def test_many_unreadable_lines_are_counted_not_all_listed(tmp_path, caplog):
    _cache_file(tmp_path, b"".join([b"garbage\n"] * 25 + [_line("a")]))
    with caplog.at_level(logging.WARNING, logger="mmtune.eval.cache"):
        assert len(AnswerCache(tmp_path, "m", "t")) == 1
    assert "skipped 25 unreadable lines (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 and 5 more)" \
        in caplog.records[0].getMessage()


def test_three_reruns_after_a_cut_last_line(tmp_path):
    """The issue's sequence: a kill cuts the last line, the rerun appends, the third run must start."""
    first = AnswerCache(tmp_path, "m", "t")
    for k in range(3):
        first.put(f"k{k}", f"answer {k}")
    path = first.path
    path.write_bytes(path.read_bytes()[:-7])  # the kill: the last line loses its end
    second = AnswerCache(tmp_path, "m", "t")
    assert len(second) == 2
    second.put("k2", "answer 2")
    third = AnswerCache(tmp_path, "m", "t")
    assert [third.get(f"k{k}") for k in range(3)] == ["answer 0", "answer 1", "answer 2"]
    assert [r["key"] for r in _lines(path)] == ["k0", "k1", "k2"]


def test_put_after_a_cut_line_starts_on_a_new_line(tmp_path, caplog):
    cache = AnswerCache(tmp_path, "m", "t")
    cache.put("a", "one")
    with open(cache.path, "ab") as f:  # another process died mid-write after this cache was opened
        f.write(b'{"key": "z", "raw": "cut')
    cache.put("b", "two")
    lines = cache.path.read_bytes().splitlines()
    assert lines[1] == b'{"key": "z", "raw": "cut' and json.loads(lines[2]) == {"key": "b", "raw": "two"}
    with caplog.at_level(logging.WARNING, logger="mmtune.eval.cache"):
        reopened = AnswerCache(tmp_path, "m", "t")
    assert (reopened.get("a"), reopened.get("b"), reopened.get("z")) == ("one", "two", None)
    assert "skipped 1 unreadable line (2)" in caplog.records[0].getMessage()


def test_put_reads_what_another_cache_object_wrote(tmp_path):
    one, two = AnswerCache(tmp_path, "m", "t"), AnswerCache(tmp_path, "m", "t")
    one.put("a", "first")
    two.put("a", "second")  # already there: not written twice, the first answer stays
    two.put("b", "b")
    assert [(r["key"], r["raw"]) for r in _lines(one.path)] == [("a", "first"), ("b", "b")]
    assert two.get("a") == "first"


def _writer(root: str, name: str, barrier) -> None:
    cache = AnswerCache(root, "m", "t")
    barrier.wait()
    for k in range(150):
        cache.put(f"shared-{k}", "same answer", by=name)  # both processes answer these
        cache.put(f"{name}-{k}", name)


def test_two_processes_share_one_cache_without_duplicates(tmp_path):
    ctx = multiprocessing.get_context("fork")  # the writers only touch files: no torch state to worry about
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), name, barrier)) for name in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    records = _lines(tmp_path / "m" / "t.jsonl")  # every line parses
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == 450
    assert len(AnswerCache(tmp_path, "m", "t")) == 450


def _evaluate_into(out: str, barrier, queue) -> None:
    from mmtune.eval.runner import evaluate
    from mmtune.models.tiny import build_tiny
    from tests.eval.test_eval_runner import _task

    model, processor = build_tiny("llava", seed=0)
    barrier.wait()
    result = evaluate(model, processor, [_task(6)], batch_size=2, out_dir=out, progress=False)
    queue.put(result["toy"]["counts"])


def test_a_held_lock_is_waited_for_and_said(tmp_path, caplog):
    lock, holding, release = tmp_path / "out" / ".eval.lock", threading.Event(), threading.Event()

    def hold():
        with exclusive_lock(lock):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    threading.Timer(0.3, release.set).start()
    with caplog.at_level(logging.WARNING, logger="mmtune.eval.cache"):
        with exclusive_lock(lock, "another evaluation is writing into out"):
            assert release.is_set()  # entered only once the holder let go
    holder.join()
    assert [r.getMessage() for r in caplog.records] == [f"another evaluation is writing into out (lock {lock})"]


@pytest.mark.slow
def test_two_evaluations_into_one_folder_take_turns(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_evaluate_into, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    counts = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    # One generated all 6 answers; the other waited, then found every one in the cache.
    assert sorted(c["generated"] for c in counts) == [0, 6]
    rows = _lines(tmp_path / "toy.samples.jsonl")
    assert sorted(r["id"] for r in rows) == [f"s{i}" for i in range(6)]
    (cache_file,) = (tmp_path / "cache").rglob("*.jsonl")
    assert len(_lines(cache_file)) == 6


def test_fingerprint_ignores_the_path_a_checkpoint_is_loaded_from(tmp_path, monkeypatch):
    import shutil

    from mmtune.models.tiny import save_tiny
    from mmtune.strategies.checkpoint import load_tuned

    save_tiny("llava", tmp_path / "ckpt")
    shutil.copytree(tmp_path / "ckpt", tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    relative, absolute, copy = (load_tuned(p).model for p in ("ckpt", str(tmp_path / "ckpt"), "copy"))
    # The loaded configs do differ by path, which the fingerprint must not see.
    assert relative.config._name_or_path != absolute.config._name_or_path
    assert model_fingerprint(relative) == model_fingerprint(absolute) == model_fingerprint(copy)
    weight = copy.model.language_model.layers[-1].mlp.down_proj.weight
    weight.data.add_(0.01)
    assert model_fingerprint(copy) != model_fingerprint(absolute)


@pytest.mark.parametrize("bad", [b'{"key": 1, "raw": "x"}\n', b"null\n", b'"just a string"\n'])
def test_other_wrong_shapes_are_skipped(tmp_path, bad):
    _cache_file(tmp_path, _line("a") + bad)
    assert len(AnswerCache(tmp_path, "m", "t")) == 1
