"""The full preset as issue 21 asks for it, and the second architecture as a config option.
(Its multi-seed path runs end to end in test_bench_e2e.py.)"""
import pytest

from mmtune.bench.grid import load_bench_config
from mmtune.config import ConfigError


def test_full_preset_covers_what_issue_21_asks():
    # All five downstream targets, caption among the seen sets, >= 12 rows over the three paradigms and
    # the anti-forgetting methods, 3 seeds, 300 test samples per set.
    config = load_bench_config(preset="full")
    assert [t.name for t in config.targets] == ["sciqa", "iconqa", "refcoco", "itm", "rsvqa"]
    assert "caption" in [s.name for s in config.seen]
    rows = config.rows()
    names = {r.label for r in rows}
    assert len(rows) >= 12 and config.seeds == [0, 1, 2] and config.n_test == 300
    assert {"full", "top(k=2)", "last", "projector"} <= names  # selective
    assert {"adapter", "prompt"} <= names and {"lora", "dora"} <= names  # additive, reparameterization
    assert {"full+replay(fraction=0.2)", "full+l2sp(weight=1.0)", "full+wise_ft(alpha=0.5)"} <= names
    assert sum("merge(" in n for n in names) == 3
    assert config.world_projector == "mlp" and config.bootstrap_resamples == 1000


def test_second_architecture_is_a_config_option():
    config = load_bench_config(preset="full", overrides=["world_projector=resampler"])
    assert config.world_projector == "resampler"
    with pytest.raises(ConfigError, match="world_projector 'qformer' is unknown; use one of mlp, resampler"):
        load_bench_config(preset="full", overrides=["world_projector=qformer"])


def test_bootstrap_and_metric_range_options():
    with pytest.raises(ConfigError, match="bootstrap_resamples must be >= 100"):
        load_bench_config(overrides=["bootstrap_resamples=10"])
    ref = load_bench_config(overrides=["seen=[{name: mme, task: mme, metric: total, metric_range: 2800}]"]).seen[0]
    assert ref.metric_range == 2800.0
    with pytest.raises(ConfigError, match="metric_range must be > 0"):
        load_bench_config(overrides=["seen=[{name: mme, task: mme, metric_range: -1}]"])


def test_a_target_has_its_own_training_budget(tmp_path):
    # rsvqa and refcoco learn slowly: the full preset gives them more steps (and rsvqa more samples);
    # every row of one target gets the same budget, and a target without one gets the bench's.
    from mmtune.bench.rows import parse_row
    from mmtune.bench.runner import Bench

    config = load_bench_config(preset="full")
    by_name = {t.name: t for t in config.targets}
    row = parse_row("lora")
    assert config.training_for(row, 0, by_name["rsvqa"]).max_steps == 600
    assert config.training_for(row, 0, by_name["refcoco"]).max_steps == 400
    assert config.training_for(row, 0, by_name["iconqa"]).max_steps == config.training.max_steps == 200
    assert config.n_train_for(by_name["rsvqa"]) == 4000 and config.n_train_for(by_name["iconqa"]) == 1000

    small = load_bench_config(overrides=[f"model={tmp_path}", "n_train=3", "strategies=[last]", "seen=[vqa]",
                                         "targets=[{name: rsvqa, task: world_rsvqa, train: 'world:rsvqa', n_train: 5, "
                                         "max_steps: 7}, iconqa]"])
    bench = Bench(small, log=lambda _: None)
    rsvqa, iconqa = small.targets
    assert len(bench.train_samples(rsvqa)) == 5 and len(bench.train_samples(iconqa)) == 3
    settings = bench.settings(rsvqa, small.rows()[0], seed=0)
    assert settings["n_train"] == 5 and settings["training"]["max_steps"] == 7
    # the budget is a training setting: the test fingerprint (which keys cached base scores) ignores it
    assert "n_train" not in settings["target"] and "max_steps" not in settings["target"]
    with pytest.raises(ConfigError, match="'rsvqa': n_train and max_steps must be > 0"):
        load_bench_config(overrides=["targets=[{name: rsvqa, max_steps: -1}]"])


def test_a_targets_training_samples_are_validated_once_for_all_rows(tmp_path, monkeypatch):
    from mmtune.bench.runner import Bench
    from mmtune.recipes import sft

    calls = []
    monkeypatch.setattr(sft, "checked_samples", lambda samples, processor, max_length, skip_invalid, collator:
                        calls.append((len(samples), max_length, skip_invalid, collator)) or list(samples))
    config = load_bench_config(overrides=[f"model={tmp_path}", "n_train=5", "strategies=[last]", "seen=[vqa]",
                                          "targets=[iconqa, rsvqa]"])
    bench = Bench(config, log=lambda _: None)
    first, collator = bench.checked_train_samples(config.targets[0], processor=None)
    again = bench.checked_train_samples(config.targets[0], processor=None)
    assert again[0] is first and again[1] is collator  # the next rows reuse the samples and their encodings
    _, other = bench.checked_train_samples(config.targets[1], processor=None)
    # once per target, bad records fail (not skipped), each target's encodings kept by its own collator
    assert [c[:3] for c in calls] == [(5, None, False), (5, None, False)]
    assert [c[3] for c in calls] == [collator, other] and other is not collator and collator._cache is not None
