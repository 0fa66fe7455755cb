"""Bench rows and configs: parsing, presets, overrides, and errors that name the fix."""
import dataclasses

import pytest

from mmtune.bench.grid import PRESETS, BenchConfig, TaskRef, load_bench_config
from mmtune.bench.rows import parse_row, slug
from mmtune.config import ConfigError


def test_parse_rows():
    r = parse_row("lora(r=8, alpha=16)+replay(fraction=0.25)")
    assert (r.strategy, r.methods, r.trains) == ("lora(r=8, alpha=16)", ("replay(fraction=0.25)",), True)
    assert r.strategy_name == "lora" and r.training_methods()[0].config.fraction == 0.25
    r = parse_row("full+ewc(weight=10)+l2sp")
    assert (r.strategy, r.methods) == ("full", ("ewc(weight=10)", "l2sp"))
    assert [m.phase for m in r.training_methods()] == ["loss", "loss"]
    r = parse_row("full+replay(fraction=0.2)+wise_ft(alpha=0.3)")
    assert (r.posterior, r.source, r.strategy, r.methods) == (
        "wise_ft(alpha=0.3)", "full+replay(fraction=0.2)", "full", ("replay(fraction=0.2)",))
    assert r.posterior_method().config.alpha == 0.3
    r = parse_row("full+merge(method=ties, density=0.5)")
    merge = r.posterior_method()
    assert (merge.config.method, merge.config.density, r.source) == ("ties", 0.5, "full")
    assert slug("full+merge(method=ties, density=0.5)") == "full_merge_method=ties_density=0.5"


@pytest.mark.parametrize("text, message", [
    ("replay(fraction=0.2)", "names no tuning strategy"),
    ("lora+replay(share=0.2)", r"unknown argument\(s\) share; valid: fraction"),
    ("full+wise_ft+merge", "use one posterior method per run"),
    ("lora+replay+replay", "replay given more than once"),
])
def test_bad_rows(text, message):
    with pytest.raises(ValueError, match=message):
        parse_row(text)


def test_quick_preset_covers_the_required_rows():
    config = load_bench_config()
    names = {r.label for r in config.rows()}
    assert {"full", "top(k=2)", "last", "projector", "lora", "dora", "adapter", "prompt"} <= names
    phases = {m.name for r in config.rows() for m in r.training_methods()}
    posterior = {r.posterior_method().name for r in config.rows() if not r.trains}
    assert {"replay", "l2sp", "ewc", "lwf"} <= phases and "wise_ft" in posterior
    assert config.preset == "quick" and len(config.targets) == 2 and len(config.seeds) == 1


def test_full_preset_has_seeds_and_merges():
    config = load_bench_config(preset="full")
    assert len(config.seeds) >= 2
    merges = [r.posterior_method() for r in config.rows() if not r.trains]
    assert {m.config.method for m in merges if m.name == "merge"} == {"task_arithmetic", "ties", "dare"}


def test_overrides_and_yaml(tmp_path):
    yaml = tmp_path / "b.yaml"
    yaml.write_text("targets:\n  - sciqa\n  - {name: mine, task: scienceqa, task_args: {root: /data}, train: t.json}\n"
                    "strategies: [full, 'full+wise_ft(alpha=0.5)']\nlr: {full: 0.001}\n")
    config = load_bench_config(yaml, ["training.max_steps=3", "seeds=[1, 2]"])
    assert config.targets[1] == TaskRef(name="mine", task="scienceqa", task_args={"root": "/data"}, train="t.json")
    # a bare world task name is that world task, scored by its eval adapter, trained on its train split
    assert config.targets[0] == TaskRef(name="sciqa", task="world_sciqa", train="world:sciqa")
    assert config.targets[1].eval_task == "scienceqa"
    assert config.training.max_steps == 3 and config.seeds == [1, 2]
    full = config.rows()[0]
    assert config.lr_for(full) == 0.001
    assert config.lr == {"full": 0.001}  # the user's table replaces the preset's
    assert config.lr_for(parse_row("lora")) == config.training.lr
    assert load_bench_config(overrides=["n_train=3"]).lr == PRESETS["quick"]["lr"]
    t = config.training_for(parse_row("full+l2sp(weight=0.5)"), seed=7)
    assert (t.seed, t.save_steps, t.max_steps) == (7, 0, 3)


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="add 'full' to strategies"):
        BenchConfig(targets=["a", "b"], seen=["c"], strategies=["full+wise_ft(alpha=0.5)"])
    with pytest.raises(ConfigError, match=">= 2 targets"):
        BenchConfig(targets=["a"], seen=["c"], strategies=["full", "full+merge"])
    with pytest.raises(ConfigError, match="seen is empty"):
        BenchConfig(targets=["a"], seen=[], strategies=["full"])
    with pytest.raises(KeyError, match="lorra"):
        BenchConfig(targets=["a"], seen=["c"], strategies=["lorra(r=4)"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_bench_config(overrides=["n_trian=3"])


def test_training_samples_from_world_and_missing(tmp_path):
    from mmtune.bench.runner import Bench

    config = BenchConfig(model=str(tmp_path), targets=["rsvqa", {"name": "real", "task": "scienceqa"}],
                         seen=["vqa"], strategies=["last"], n_train=6, out_dir=str(tmp_path / "out"))
    bench = Bench(config, log=lambda _: None)
    samples = bench.train_samples(config.targets[0])
    assert len(samples) == 6 and {s.meta["task"] for s in samples} == {"rsvqa"}
    assert bench.train_samples(config.targets[0]) is samples  # built once
    with pytest.raises(ValueError, match="'real' has no training records"):
        bench.train_samples(config.targets[1])


def test_shipped_bench_yamls_load():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("bench_*.yaml"))
    assert configs
    for path in configs:
        config = load_bench_config(path)
        assert config.rows() and config.targets and config.seen
    real = load_bench_config(configs[0])
    assert real.model and real.targets[0].train.endswith("llava_train.json")
    assert real.lr_for(parse_row("lora(r=32, alpha=64)")) == 2e-4 and real.training.group_lr == {"projector": 2e-5}
    assert real.lr_for(parse_row("last")) == 1e-4  # the YAML's default, not the preset's rate for last


def test_test_fingerprint_follows_the_test_samples(tmp_path):
    from mmtune.bench.runner import Bench

    config = BenchConfig(model=str(tmp_path), targets=["rsvqa"], seen=["vqa"], strategies=["last"], n_test=4,
                         out_dir=str(tmp_path / "out"))
    bench = Bench(config, log=lambda _: None)
    first = bench.test_fingerprint(config.targets[0])
    assert first == bench.test_fingerprint(config.targets[0])
    more = Bench(dataclasses.replace(config, n_test=5), log=lambda _: None)
    # other samples scored -> cached base scores and finished runs are not reused
    assert more.test_fingerprint(more.config.targets[0])["test_samples"] != first["test_samples"]


def test_world_sets_are_drawn_to_n_test_and_a_short_set_is_said(tmp_path):
    # World eval tasks default to 200 samples: a bench asking for 300 must score 300, not 200.
    from mmtune.bench.runner import Bench

    grid = dict(targets=["iconqa"], seen=["vqa"], strategies=["full"])
    bench = Bench(BenchConfig(n_test=300, **grid), base_path=tmp_path)
    assert len(bench.task(bench.config.targets[0]).samples) == 300
    small = Bench(BenchConfig(n_test=50, **grid), base_path=tmp_path)
    assert small.task(small.config.seen[0]).samples[:50] == bench.task(bench.config.seen[0]).samples[:50]
    said: list[str] = []
    short = Bench(BenchConfig(n_test=300, **{**grid, "targets": [{"name": "iconqa", "task": "world_iconqa",
                                                                   "task_args": {"n": 20}}]}),
                  log=said.append, base_path=tmp_path)
    assert len(short.task(short.config.targets[0]).samples) == 20
    assert said == ["iconqa: 20 test samples, fewer than n_test=300; all of them are scored"]
