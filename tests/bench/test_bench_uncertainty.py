"""Bootstrap intervals against cases worked out by hand, and per-sample scores that reproduce each
task's headline score."""
import itertools

import numpy as np
import pytest

from mmtune.bench.sample_scores import sample_scores
from mmtune.bench.uncertainty import (
    SampleScores,
    SeedScores,
    paired_delta,
    percentile_interval,
    resample_indices,
    row_replicates,
)
from mmtune.data.sample import Sample
from mmtune.eval.metrics import pope_scores
from mmtune.eval.tasks.kinds import caption_task, exact_match_task, mme_task, pope_task

# Every resample of a 3-sample set: 3^3 = 27 equally likely draws.
ALL_27 = np.array(list(itertools.product(range(3), repeat=3)))


def test_every_resample_of_three_samples_by_hand():
    # Scores [0, 0, 100]: a draw's mean is 100 k / 3 with k the draws of the third sample, k ~ Binomial(3, 1/3):
    # k = 0: 8 draws, 1: 12, 2: 6, 3: 1.
    means = SampleScores("mean", np.array([0.0, 0.0, 100.0])).score(ALL_27)
    assert sorted(np.round(means, 6).tolist()) == (
        [0.0] * 8 + [33.333333] * 12 + [66.666667] * 6 + [100.0])
    # Percentiles by linear interpolation over the 27 sorted values (positions 0..26):
    # 2.5% -> 0.65, between two zeros = 0; 97.5% -> 25.35 = 66.67 + 0.35 x (100 - 66.67) = 78.33.
    low, high = percentile_interval(means)
    assert low == 0.0
    assert high == pytest.approx(66.666667 + 0.35 * 33.333333, abs=1e-5)


def test_paired_delta_resamples_the_same_samples():
    # after [100, 100, 0], before [0, 100, 0]: per-sample change [100, 0, 0], so the 27 paired deltas are the
    # means above. Unpaired, the base's own draws would add spread; paired, a sample both score alike adds none.
    after = SampleScores("mean", np.array([100.0, 100.0, 0.0]))
    before = SampleScores("mean", np.array([0.0, 100.0, 0.0]))
    deltas = paired_delta(after, before, ALL_27)
    assert sorted(np.round(deltas, 6).tolist()) == [0.0] * 8 + [33.333333] * 12 + [66.666667] * 6 + [100.0]
    with pytest.raises(ValueError, match="same test samples"):
        paired_delta(after, SampleScores("mean", np.zeros(2)), ALL_27[:, :2])


def test_f1_statistic_by_hand():
    # per sample [tp, fp, fn]: tp 2, fp 1, fn 1 -> F1 = 2 x 2 / (2 x 2 + 1 + 1) = 66.67
    counts = SampleScores("f1", np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]], dtype=float))
    assert float(counts.score()) == pytest.approx(200 / 3)
    # the resample drawing sample 4 (a true negative) five times has no positives at all: F1 0
    assert counts.score(np.array([[4] * 5, [0] * 5])).tolist() == [0.0, 100.0]


def test_resample_indices_are_fixed_by_name_size_and_seed():
    a = resample_indices("vqa", 5, resamples=200)
    assert a.shape == (200, 5) and a.min() >= 0 and a.max() <= 4
    assert np.array_equal(a, resample_indices("vqa", 5, resamples=200))
    assert not np.array_equal(a, resample_indices("gqa", 5, resamples=200))
    assert not np.array_equal(a, resample_indices("vqa", 5, resamples=200, seed=1))
    with pytest.raises(ValueError, match="no samples"):
        resample_indices("vqa", 0)


def test_row_replicates_average_seeds_and_put_caption_on_its_range():
    # Two seeds on the target: one right on all 4 samples, one wrong on all; base wrong on all. Every
    # resample gives E = mean(100, 0) = 50, so the interval is exactly [50, 50] whatever is drawn.
    # Caption: every sample 500 after, 600 before -> raw -100, on F's scale (range 1000) -10; vqa: 0 change.
    # F = (-10 + 0) / 2 = -5; O = 45.
    def const(value, n=4):
        return SampleScores("mean", np.full(n, value))

    base = {"t": const(0.0), "caption": const(600.0), "vqa": const(80.0)}
    seeds = [SeedScores(const(100.0), {"caption": const(500.0), "vqa": const(80.0)}),
             SeedScores(const(0.0), {"caption": const(500.0), "vqa": const(80.0)})]
    reps = row_replicates("t", seeds, base, {"t": 100.0, "caption": 1000.0, "vqa": 100.0}, resamples=100)
    assert percentile_interval(reps["E"]) == (50.0, 50.0)
    assert percentile_interval(reps["F"]) == (-5.0, -5.0)
    assert percentile_interval(reps["O"]) == (45.0, 45.0)
    assert percentile_interval(reps["seen:caption"]) == (-100.0, -100.0)  # raw, beside


def test_interval_of_a_varying_set_covers_its_score_and_narrows_with_more_samples():
    # A fixed-seed property check: 60% right out of n; the interval holds 60 and shrinks about as 1 / sqrt(n).
    def width(n):
        scores = SampleScores("mean", np.array([100.0] * (6 * n // 10) + [0.0] * (n - 6 * n // 10)))
        low, high = percentile_interval(scores.score(resample_indices("t", n)))
        assert low < 60.0 < high
        return high - low

    # normal approximation: 2 x 1.96 x sqrt(0.24 / n) x 100 = 19.2 (n = 100), 9.6 (n = 400)
    assert width(100) == pytest.approx(19.2, abs=2.5)
    assert width(400) == pytest.approx(9.6, abs=1.5)


def _samples(meta_list):
    return [Sample(id=str(i), messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                   meta=meta) for i, meta in enumerate(meta_list)]


def test_per_sample_scores_reproduce_pope_f1():
    labels = ["yes", "yes", "no", "no", "yes"]
    answers = ["Yes.", "No", "yes", "Not at all", "hmm"]  # tp, fn, fp, tn, unparsed on a yes probe (fn)
    task = pope_task("pope", _samples([{"answer": a} for a in labels]), chance=50.0, seen=True)
    predictions = [task.judge(s, a) for s, a in zip(task.samples, answers)]
    f1 = pope_scores(answers, labels)["f1"]  # tp 1, fp 1, fn 2 -> 2 / (2 + 1 + 2) = 40
    assert f1 == pytest.approx(40.0)
    found = sample_scores(task, predictions, "f1", f1)
    assert found.statistic == "f1" and float(found.score()) == pytest.approx(f1)


def test_per_sample_scores_reproduce_cider_as_the_mean_of_its_per_image_scores():
    captions = [["a red circle", "a red round shape"], ["two blue squares", "blue squares, two of them"],
                ["a green triangle", "one green triangle"]]
    task = caption_task("caption", _samples([{"captions": c} for c in captions]), chance=0.0, seen=True)
    predictions = [task.judge(s, a) for s, a in zip(task.samples, ["a red circle", "blue squares", "a cat"])]
    headline = task.aggregate(predictions)["cider"]
    found = sample_scores(task, predictions, "cider", headline)
    assert found.statistic == "mean" and float(found.score()) == pytest.approx(headline)


def test_per_sample_scores_only_where_they_reproduce_the_score():
    task = exact_match_task("gqa", _samples([{"answer": "red"}, {"answer": "blue"}]), chance=0.0, seen=True)
    predictions = [task.judge(s, a) for s, a in zip(task.samples, ["red", "green"])]
    assert sample_scores(task, predictions, "exact_match", 50.0).values.tolist() == [100.0, 0.0]
    assert sample_scores(task, predictions, "exact_match", 75.0) is None  # not this set's score
    mme = mme_task("mme", _samples([{"answer": "Yes", "category": "existence", "image_id": 0},
                                    {"answer": "No", "category": "existence", "image_id": 0}]),
                   chance=50.0, seen=True)
    judged = [mme.judge(s, a) for s, a in zip(mme.samples, ["Yes", "Yes"])]
    scores = mme.aggregate(judged)
    assert sample_scores(mme, judged, "accuracy", scores["accuracy"]) is not None
    # total = acc 50 + acc+ 0 happens to equal the mean of the per-sample scores here; it still gets none
    assert scores["total"] == 50.0 and sample_scores(mme, judged, "total", scores["total"]) is None
