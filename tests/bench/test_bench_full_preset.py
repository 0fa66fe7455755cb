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
