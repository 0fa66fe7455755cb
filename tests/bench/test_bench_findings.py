"""The paper's findings decided from hand-made bench summaries (each verdict forced by the replicates), the
paired difference interval against a hand-worked case, findings.md beside the report, and --compare."""
import itertools
import json

import numpy as np
import pytest

from mmtune.bench.findings import FAILS, HOLDS, INCONCLUSIVE, Claim, decide, findings_markdown
from mmtune.bench.report import bootstrap, write_report
from mmtune.bench.uncertainty import SampleScores, paired_difference, percentile_interval
from mmtune.cli import main
from mmtune.files import atomic_write_json

# Every resample of a 3-sample set: 3^3 = 27 equally likely draws.
ALL_27 = np.array(list(itertools.product(range(3), repeat=3)))


def test_paired_difference_by_hand():
    # Two rows scored on the same 3 test samples: A [100, 100, 0], B [0, 100, 0]. Per sample A - B is [100, 0, 0],
    # so on each joint draw the difference is 100 k / 3, k ~ Binomial(3, 1/3): 0 (8 draws), 33.3 (12), 66.7 (6),
    # 100 (1). Percentiles over the 27 sorted values: 2.5% at position 0.65 -> 0; 97.5% at 25.35 ->
    # 66.67 + 0.35 x 33.33 = 78.33.
    a = SampleScores("mean", np.array([100.0, 100.0, 0.0])).score(ALL_27)
    b = SampleScores("mean", np.array([0.0, 100.0, 0.0])).score(ALL_27)
    low, high = paired_difference(a, b)
    assert low == 0.0 and high == pytest.approx(66.666667 + 0.35 * 33.333333, abs=1e-5)
    # Unpaired (B's draw independent of A's: all 27 x 27 pairs) the shared second sample no longer cancels.
    # A's hits kA ~ Bin(3, 2/3) (27ths: 1, 6, 12, 8), B's kB ~ Bin(3, 1/3) (8, 12, 6, 1); the difference is
    # 100 (kA - kB) / 3. Sorted, -100 takes 1 pair, -66.7 takes 6 + 6, -33.3 takes 12 + 36 + 12 (positions 13-72),
    # so 2.5% (position 18.2 of 728) is -33.3; +100 (kA 3, kB 0) takes the top 64 pairs, so 97.5% is +100.
    unpaired = percentile_interval((a[:, None] - b[None, :]).ravel())
    assert unpaired == (pytest.approx(-100 / 3), pytest.approx(100.0))
    with pytest.raises(ValueError, match="same number of resamples"):
        paired_difference(a, b[:5])


def test_claim_verdicts():
    assert Claim("d", 1, 2.0, (0.5, 3.0)).verdict == HOLDS
    assert Claim("d", 1, -2.0, (-3.0, -0.5)).verdict == FAILS
    assert Claim("d", 1, 1.0, (-1.0, 3.0)).verdict == INCONCLUSIVE
    assert Claim("d", -1, -2.0, (-3.0, -0.5)).verdict == HOLDS  # claimed below 0
    assert Claim("d", 1, 5.0, None).verdict == INCONCLUSIVE  # no per-sample scores, no interval
    assert Claim("d", 1, 0.0, (0.0, 1.0)).verdict == INCONCLUSIVE  # an interval touching 0 does not exclude it


# A row's replicates: its mean plus a spread of +-`noise` (5 resamples), the same offsets for every row, so a
# paired difference of two rows is exactly the difference of their means when noise is equal.
SPREAD = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])


def _row(E, F, noise=1.0):
    scores = {"E": E, "F": F, "O": E + F}
    return ({k: [v, 0.0] for k, v in scores.items()},
            {k: v + noise * SPREAD for k, v in scores.items()})


def _bench(rows):
    """target -> row -> (E, F[, noise]) to the report's summary and the bootstrap replicates."""
    built = {t: {r: _row(*v) for r, v in rs.items()} for t, rs in rows.items()}
    return ({t: {r: s for r, (s, _) in rs.items()} for t, rs in built.items()},
            {t: {r: reps for r, (_, reps) in rs.items()} for t, rs in built.items()})


def _verdicts(findings):
    return {(d.finding, d.target): d.verdict for d in findings.decisions}


def test_every_finding_holds_on_a_bench_built_to_show_them():
    # rsvqa (shifted): full specializes most (E 40 vs <= 20) and forgets most; lora well below full on E;
    # projector gains (E 15). sciqa (in-domain): lora matches full on E (gap 0 < rsvqa's 30), projector's
    # O is negative. top/last have the best O on both. full+ewc is not a plain row: it is left out.
    summary, reps = _bench({
        "rsvqa": {"full": (40, -30), "lora": (10, -5), "top(k=2)": (20, -2), "last": (18, -1),
                  "projector": (15, -8), "full+ewc(weight=10.0)": (60, 0)},
        "sciqa": {"full": (30, -30), "lora": (29, -10), "top(k=2)": (25, -3), "last": (24, -2),
                  "projector": (2, -10)},
    })
    found = decide(summary, reps)
    v = _verdicts(found)
    assert set(v.values()) == {HOLDS}, v
    assert len(found.decisions) == 12 and found.not_measured == [] and found.shifted == ["rsvqa"]
    first = next(d for d in found.decisions if d.finding == "Full-ST specializes most" and d.target == "rsvqa")
    assert [c.difference for c in first.claims] == [
        "E(full) - E(lora)", "E(full) - E(top(k=2))", "E(full) - E(last)", "E(full) - E(projector)"]
    assert first.claims[0].estimate == 30.0 and first.claims[0].interval == (30.0, 30.0)
    gap = next(d for d in found.decisions if d.finding.startswith("LoRA is limited") and d.target == "sciqa")
    assert gap.claims[0].difference == "(E(full) - E(lora) on rsvqa) - (E(full) - E(lora) on sciqa)"
    assert gap.claims[0].estimate == 29.0  # 30 - 1


def test_each_verdict_forced_by_the_intervals():
    # full vs lora on one target: F(lora) - F(full) = +4. With noise 1 on lora and 0 on full the paired difference
    # spreads 4 +- 1 (holds); reversed means (lora forgets more by 4) give -4 +- 1 (does not hold); noise 10
    # spreads 4 +- 10 (inconclusive).
    cases = {HOLDS: {"full": (10, -8, 0), "lora": (5, -4, 1)},
             FAILS: {"full": (10, -4, 0), "lora": (5, -8, 1)},
             INCONCLUSIVE: {"full": (10, -8, 0), "lora": (5, -4, 10)}}
    for expected, rows in cases.items():
        summary, reps = _bench({"sciqa": rows})
        claim = next(d for d in decide(summary, reps).decisions if d.finding == "LoRA forgets less than Full-ST")
        assert claim.verdict == expected
    # Without per-sample scores there is no interval: inconclusive, whatever the means say.
    summary, _ = _bench({"sciqa": cases[HOLDS]})
    d = next(d for d in decide(summary, {"sciqa": {"full": None, "lora": None}}).decisions
             if d.finding == "LoRA forgets less than Full-ST")
    assert d.verdict == INCONCLUSIVE and d.claims[0].interval is None and d.claims[0].estimate == 4.0


def test_one_failing_claim_decides_and_an_inconclusive_one_withholds():
    # Full-ST specializes most: above lora beyond the noise, below last beyond it -> does not hold;
    # with last 0.5 above full but noisier (difference -0.5 -+ 2 over the resamples) -> inconclusive.
    summary, reps = _bench({"sciqa": {"full": (30, -9), "lora": (10, -1), "last": (40, -1)}})
    assert _verdicts(decide(summary, reps))[("Full-ST specializes most", "sciqa")] == FAILS
    summary, reps = _bench({"sciqa": {"full": (30, -9), "lora": (10, -1), "last": (30.5, -1, 3)}})
    assert _verdicts(decide(summary, reps))[("Full-ST specializes most", "sciqa")] == INCONCLUSIVE


def test_projector_hurts_in_domain_decided_on_its_O_and_missing_rows_are_listed():
    summary, reps = _bench({"sciqa": {"projector": (5, -1), "lora": (5, -2)}})
    found = decide(summary, reps)
    v = _verdicts(found)
    assert v[("Projector tuning helps under visual domain shift, hurts when features are similar", "sciqa")] == FAILS
    assert ("Full-ST forgets most", "sciqa") not in v
    assert "Full-ST forgets most on sciqa: needs a plain `full` row and another plain strategy row" in found.not_measured
    # no shifted target in this bench, so LoRA's shortfall under shift cannot be compared with anything
    assert any(m.startswith("LoRA is limited under large distribution shift on sciqa: needs plain `full`")
               for m in found.not_measured)
    text = findings_markdown(found)
    assert "| Projector tuning helps under visual domain shift, hurts when features are similar | sciqa | " \
           "**does not hold** | O(projector) < 0: +4.0 [+3." in text
    assert "holds: 0, does not hold: 1, inconclusive: 0 of 1." in text
    assert "does not hold** if it lies entirely on the other side" in text


def test_domain_findings_need_the_target_domain_named():
    # A bench of real data: the target's visual domain is not known, so only the domain-free findings are decided,
    # until the caller names it.
    summary, reps = _bench({"scienceqa": {"full": (30, -20), "lora": (10, -2), "projector": (1, -9)}})
    found = decide(summary, reps)
    assert not any(d.finding.startswith(("LoRA is limited", "Projector")) for d in found.decisions)
    assert sum("visual domain is not known" in m for m in found.not_measured) == 2
    named = decide(summary, reps, shifted=["scienceqa"])
    assert _verdicts(named)[("LoRA is limited under large distribution shift", "scienceqa")] == HOLDS  # 30 - 10
    assert named.shifted == ["scienceqa"] and named.in_domain == []


def _sample_run(target, row, target_values, seen_values, E, F):
    return {"run_id": f"{target}--{row}--s0", "target": target, "row": row, "seed": 0, "kind": "tune",
            "E": E, "F": F, "O": E + F, "seen_deltas": {"vqa": F}, "ranges": {target: 100.0, "vqa": 100.0},
            "per_sample": {target: {"statistic": "mean", "values": target_values},
                           "vqa": {"statistic": "mean", "values": seen_values}},
            "trainable_params": 10, "train_seconds": 1.0, "peak_memory_mb": 1.0}


def _tiny_bench(out, projector, lora_vqa):
    """A bench output folder of two rows on one target, 4 test samples each: full forgets every vqa sample the
    base knew, lora keeps ``lora_vqa`` of them."""
    base = {"scores": {"rsvqa": 0.0, "vqa": 100.0}, "per_sample": {
        "rsvqa": {"statistic": "mean", "values": [0.0] * 4}, "vqa": {"statistic": "mean", "values": [100.0] * 4}}}
    lora = [100.0] * lora_vqa + [0.0] * (4 - lora_vqa)
    runs = [_sample_run("rsvqa", "full", [100.0, 100.0, 100.0, 0.0], [0.0] * 4, 75.0, -100.0),
            _sample_run("rsvqa", "lora", [100.0, 0.0, 0.0, 0.0], lora, 25.0, 25.0 * lora_vqa - 100.0)]
    for r in runs:
        atomic_write_json(out / "runs" / f"{r['run_id']}.json", r)
    atomic_write_json(out / "base.json", base)
    atomic_write_json(out / "config.json", {"model": "", "world_projector": projector, "bootstrap_resamples": 200})


def test_rows_of_a_target_are_resampled_jointly():
    # Two rows right on the same two of four target samples: each row's E spreads over the resamples, but on every
    # joint resample they score alike, so their paired difference is exactly 0.
    base = {"per_sample": {"t": {"statistic": "mean", "values": [0.0] * 4},
                           "vqa": {"statistic": "mean", "values": [100.0] * 4}}}
    runs = [_sample_run("t", row, [100.0, 0.0, 100.0, 0.0], [100.0] * 4, 50.0, 0.0) for row in ("full", "lora")]
    reps = bootstrap(runs, base, resamples=300)["t"]
    low, high = percentile_interval(reps["full"]["E"])
    assert low < 25.0 and high > 75.0
    assert paired_difference(reps["full"]["E"], reps["lora"]["E"]) == (0.0, 0.0)


def test_write_report_writes_findings_beside_the_report(tmp_path):
    _tiny_bench(tmp_path, "mlp", 4)
    paths = write_report(tmp_path)
    found = json.loads(paths["findings_json"].read_text())
    lora = next(f for f in found["findings"] if f["finding"] == "LoRA forgets less than Full-ST")
    # lora keeps all 4 vqa samples, full none: F(lora) - F(full) = 100 on every joint resample
    assert lora["claims"] == [{"difference": "F(lora) - F(full)", "claimed": "> 0", "estimate": 100.0,
                               "interval": [100.0, 100.0], "verdict": HOLDS}]
    assert lora["verdict"] == HOLDS and list(found["shifted_targets"]) == ["rsvqa"]
    assert "| LoRA forgets less than Full-ST | rsvqa | **holds** |" in paths["findings"].read_text()


def test_compare_two_bench_outputs_side_by_side(tmp_path, capsys):
    _tiny_bench(tmp_path / "a", "mlp", 4)
    _tiny_bench(tmp_path / "b", "resampler", 0)
    assert main(["bench", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")]) == 0
    text = (tmp_path / "c" / "compare.md").read_text()
    assert text in capsys.readouterr().out
    assert "| strategy | E (world-mlp) | F (world-mlp) | O (world-mlp) | E (world-resampler) | F (world-resampler) | " \
           "O (world-resampler) |" in text
    assert "| LoRA forgets less than Full-ST | rsvqa | world-mlp | **holds** |" in text
    # on the resampler bench lora forgets as much as full: F difference 0 on every resample
    assert ("| LoRA forgets less than Full-ST | rsvqa | world-resampler | **inconclusive** | "
            "F(lora) - F(full) > 0: +0.0 [+0.0, +0.0] |") in text
    data = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [b["architecture"] for b in data["benches"]] == ["world-mlp", "world-resampler"]
    assert {(f["architecture"], f["verdict"]) for f in data["findings"]
            if f["finding"] == "LoRA forgets less than Full-ST"} == {("world-mlp", HOLDS), ("world-resampler", INCONCLUSIVE)}


def test_compare_labels_and_a_folder_that_is_not_a_bench(tmp_path, capsys):
    _tiny_bench(tmp_path / "a", "mlp", 4)
    _tiny_bench(tmp_path / "b", "mlp", 4)
    # one architecture twice: the two benches are told apart by their folders
    assert main(["bench", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")]) == 0
    assert "| strategy | E (a) | F (a) | O (a) | E (b) | F (b) | O (b) |" in (tmp_path / "c" / "compare.md").read_text()
    assert main(["bench", "--compare", str(tmp_path / "a"), str(tmp_path / "nothing")]) != 0
    assert "nothing" in capsys.readouterr().err
