"""E, F, O and the Pareto recommendation, against values worked by hand."""
import math

import pytest

from mmtune.bench.pareto import Point, dominates, pareto_front, recommend
from mmtune.bench.scores import RunScores, aggregate_seeds, mean_std, run_scores, stabilization


def test_run_scores_golden():
    # E = 62.5 - 25 = 37.5; deltas vqa 45-50 = -5, caption 82-80 = +2; F = (-5 + 2) / 2 = -1.5; O = 36
    s = run_scores(62.5, 25.0, {"vqa": 45.0, "caption": 82.0}, {"vqa": 50.0, "caption": 80.0})
    assert s.E == 37.5
    assert s.F == -1.5
    assert s.O == 36.0
    assert s.seen_deltas == {"caption": 2.0, "vqa": -5.0}


def test_stabilization_needs_same_seen_tasks():
    with pytest.raises(ValueError, match="mme"):
        stabilization({"vqa": 1.0}, {"vqa": 1.0, "mme": 2.0})


def test_mean_std_sample_std():
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; / (4 - 1) -> sqrt(5/3)
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert math.isclose(std, math.sqrt(5 / 3))
    assert mean_std([7.0]) == (7.0, 0.0)


def test_aggregate_seeds():
    runs = [RunScores(E=10, F=-2, O=8), RunScores(E=14, F=-4, O=10)]
    agg = aggregate_seeds(runs)
    assert agg["E"] == (12.0, math.sqrt(8))  # deviations +-2 -> (4 + 4) / 1
    assert agg["F"] == (-3.0, math.sqrt(2))
    assert agg["O"] == (9.0, math.sqrt(2))


POINTS = [
    Point("full", 30, -10),   # O 20
    Point("top(k=2)", 25, -4),  # O 21
    Point("lora", 20, -2),    # O 18
    Point("last", 10, -3),    # dominated by lora
    Point("prompt", 5, 0),    # O 5
]


def test_pareto_front_golden():
    assert dominates(Point("lora", 20, -2), Point("last", 10, -3))
    assert not dominates(Point("a", 1, 1), Point("b", 1, 1))
    assert [p.name for p in pareto_front(POINTS)] == ["full", "top(k=2)", "lora", "prompt"]


def test_recommend_golden():
    rec = recommend(POINTS)
    assert rec.name == "top(k=2)"
    assert rec.why == (
        "highest O (+21.0) among 4 non-dominated of 5; forgets 6.0 points less than full for 5.0 less E"
    )


def test_recommend_when_best_o_is_top_e():
    rec = recommend([Point("full", 30, -1), Point("lora", 5, 0)])
    assert rec.name == "full"
    assert rec.why.endswith("also the highest E (+30.0)")


def test_recommend_all_tied_is_deterministic():
    rec = recommend([Point("lora", 0, 0), Point("last", 0, 0)])
    assert rec.name == "last"  # frontier order: E, F, then name
    assert rec.why.endswith("also the highest E (+0.0); ties on E and F with lora")
