"""Replay mixing: the right share of seen samples, deterministic per seed."""
import pytest

from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.methods.replay import replay_count, with_replay


def _samples(prefix, n):
    return [Sample(id=f"{prefix}{i}", messages=[user_turn("q"), assistant_turn("a")]) for i in range(n)]


def test_replay_count():
    assert replay_count(8, 0.2) == 2  # 2 of 10 = 20%
    assert replay_count(4, 0.5) == 4
    assert replay_count(4, 0.0) == 0
    with pytest.raises(ValueError, match="fraction"):
        replay_count(4, 1.0)


def test_with_replay_is_deterministic_and_marks_replay():
    target, seen = _samples("t", 8), _samples("s", 10)
    a = with_replay(target, seen, 0.2, seed=1)
    assert [s.id for s in a] == [s.id for s in with_replay(target, seen, 0.2, seed=1)]
    assert [s.id for s in a] != [s.id for s in with_replay(target, seen, 0.2, seed=2)]
    replayed = [s for s in a if s.meta.get("replay")]
    assert len(a) == 10 and len(replayed) == 2
    assert {s.id for s in a} >= {s.id for s in target}
    assert not any(s.meta for s in seen)  # originals untouched


def test_with_replay_reuses_a_small_pool():
    a = with_replay(_samples("t", 4), _samples("s", 3), 0.5, seed=0)
    replayed = [s.id.split(":", 1)[1] for s in a if s.meta.get("replay")]
    assert len(replayed) == 4 and set(replayed) == {"s0", "s1", "s2"}
    assert len({s.id for s in a}) == 8


def test_with_replay_needs_seen_samples():
    with pytest.raises(ValueError, match="seen"):
        with_replay(_samples("t", 4), [], 0.5, seed=0)
