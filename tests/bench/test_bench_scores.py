"""E, F, O and the Pareto recommendation, against values worked by hand."""
import math

import pytest

from mmtune.bench.pareto import Point, dominates, pareto_front, recommend
from mmtune.bench.scores import RunScores, aggregate_seeds, mean_std, metric_range, run_scores, stabilization


def test_caption_changes_count_on_the_full_range():
    # CIDEr-D runs 0-1000: caption 560 -> 500 is -60 raw, -6 on F's scale; vqa 90 -> 80 is -10 on both.
    # F = (-6 + -10) / 2 = -8 (the raw mean would be -35, the caption alone outweighing vqa).
    s = run_scores(40.0, 30.0, {"caption": 500.0, "vqa": 80.0}, {"caption": 560.0, "vqa": 90.0},
                   {"caption": metric_range("cider"), "vqa": metric_range("vqa_accuracy")})
    assert (s.E, s.F, s.O) == (10.0, -8.0, 2.0)
    assert s.seen_deltas == {"caption": -60.0, "vqa": -10.0}  # raw, kept beside
    assert s.seen_scaled == {"caption": -6.0, "vqa": -10.0}


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
    # Without intervals a tie is an equal O (here equal E and F too); the recommendation names it.
    assert rec.why.endswith("also the highest E (+0.0); ties on O with lora")
    assert rec.tied == ("lora",)


def test_rows_whose_intervals_overlap_tie():
    # O intervals [18, 24] and [16, 20] overlap: the better mean is recommended but named as tied.
    a = Point("full", 30, -9, E_ci=(27, 33), F_ci=(-11, -7), O_ci=(18, 24))
    b = Point("lora", 20, -2, E_ci=(17, 23), F_ci=(-3, -1), O_ci=(16, 20))
    rec = recommend([a, b])
    assert (rec.name, rec.tied) == ("full", ("lora",))
    assert rec.why.endswith("ties on O with lora (95% intervals overlap: the difference is within the noise)")


def test_rows_whose_intervals_are_disjoint_do_not_tie():
    a = Point("full", 30, -9, E_ci=(27, 33), F_ci=(-11, -7), O_ci=(19, 24))
    b = Point("lora", 20, -2, E_ci=(17, 23), F_ci=(-3, -1), O_ci=(15, 18.5))
    rec = recommend([a, b])
    assert (rec.name, rec.tied) == ("full", ())
    assert rec.why.endswith("its O interval lies above every other row's")


def test_frontier_keeps_rows_not_dominated_beyond_the_noise():
    strong = Point("full", 30, -2, E_ci=(25, 35), F_ci=(-4, 0))
    # Lower on both means but overlapping on both intervals: not dominated beyond the noise.
    close = Point("lora", 28, -3, E_ci=(24, 32), F_ci=(-5, -1))
    # Lower on both and below on E beyond the noise: dominated.
    weak = Point("last", 10, -3, E_ci=(8, 12), F_ci=(-5, -1))
    assert not dominates(strong, close) and dominates(strong, weak)
    assert [p.name for p in pareto_front([strong, close, weak])] == ["full", "lora"]
