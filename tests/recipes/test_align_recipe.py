"""``mmtune align`` end to end on a tiny random LLaVA: a checkpoint that loads and answers, the
reference each strategy gets, killed-and-resumed runs that repeat an uninterrupted run's losses,
and the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import TrainerCallback

from mmtune.data.preferences import Preference, write_preferences
from mmtune.data.sample import user_turn
from mmtune.recipes.align.config import ObjectiveConfig
from mmtune.recipes.align.train import build_trainer, train_align
from mmtune.recipes.sft import TrainingConfig
from mmtune.recipes.trainer import SFTTrainer
from tests.recipes.conftest import COLORS, load_plain

LORA = "lora(r=4, alpha=8, groups=llm)"


def _prefs(root: Path, n: int = 6) -> list[Preference]:
    """Two-coloured images (so a crop changes them); chosen names the left colour, rejected a wrong one."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        left, right = COLORS[i % len(COLORS)], COLORS[(i + 2) % len(COLORS)]
        image = Image.new("RGB", (24, 16), left)
        image.paste(Image.new("RGB", (12, 16), right), (12, 0))
        image.save(root / f"{i}.png")
        out.append(Preference(f"p{i}", [user_turn("what color is on the left" + " please" * (i % 2))],
                              [str(root / f"{i}.png")], f"the color is {left}", "the color is black"))
    return out


def _training(**kw) -> TrainingConfig:
    base = {"lr": 1e-2, "max_steps": 4, "batch_size": 2, "save_steps": 0, "logging_steps": 1, "seed": 0,
            "warmup_ratio": 0.0}
    return TrainingConfig(**{**base, **kw})


def _completion_logps(model, batch) -> torch.Tensor:
    """Each row's summed log-probability of its completion tokens, from the plain forward's logits."""
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "completion_mask"}
        logits = model(**inputs).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


def test_dpo_run_saves_a_checkpoint_that_loads_and_answers(tiny_dir, tmp_path):
    from mmtune.recipes.infer import infer
    from mmtune.strategies.checkpoint import load_tuned, read_mmtune_record

    prefs = _prefs(tmp_path / "images")
    result = train_align(*load_plain(tiny_dir), prefs, objective=ObjectiveConfig(method="dpo"), strategy=LORA,
                         output_dir=tmp_path / "run", training=_training(max_steps=3))
    record = read_mmtune_record(result.final_dir)
    assert record["strategy"] == LORA and record["meta"]["recipe"] == "align"
    assert record["meta"]["reference"] == "adapters disabled" and record["meta"]["steps"] == 3
    steps = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3] and [s["loss"] for s in steps] == result.losses
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(steps[-1])
    assert steps[0]["loss"] == pytest.approx(0.693147, abs=1e-5)  # log 2: the policy starts as its reference

    loaded = load_tuned(result.final_dir)
    run = build_trainer(*load_plain(tiny_dir), prefs, objective=ObjectiveConfig(), strategy="full",
                        output_dir=tmp_path / "probe", training=_training())
    batch = run.trainer.data_collator([{"index": 0}, {"index": 1}])
    result.model.eval()
    assert torch.allclose(_completion_logps(loaded.model, batch), _completion_logps(result.model, batch), atol=1e-4)
    answer = infer(result.final_dir, prefs[0].images[0], "what color is on the left", max_new_tokens=4)
    assert isinstance(answer, str)


def test_lora_reference_is_the_base_with_adapters_disabled(tiny_dir, tmp_path):
    run = build_trainer(*load_plain(tiny_dir), _prefs(tmp_path / "images"), objective=ObjectiveConfig(),
                        strategy=LORA, output_dir=tmp_path / "run", training=_training(max_steps=2))
    trainer = run.trainer
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]  # no "ref" copy
    trainer.train()
    batch = trainer.data_collator([{"index": 0}, {"index": 1}])
    trainer.model.eval()
    reference = torch.cat(trainer.compute_ref_log_probs(trainer.model, batch))
    base, _ = load_plain(tiny_dir)
    assert torch.allclose(reference, _completion_logps(base.eval(), batch), atol=1e-4)
    policy = _completion_logps(trainer.model, batch)
    assert (policy - reference).abs().max() > 1e-3  # the adapters did train: the check above means something


@pytest.mark.parametrize("strategy", ["top(k=1)+projector", f"{LORA}+projector"])
def test_other_strategies_get_a_frozen_copy_of_the_base(tiny_dir, tmp_path, strategy):
    """A PEFT adapter beside selected weights (lora+projector): disabling the adapter would keep the tuned
    projector, so the reference is a copy too."""
    run = build_trainer(*load_plain(tiny_dir), _prefs(tmp_path / "images"), objective=ObjectiveConfig(),
                        strategy=strategy, output_dir=tmp_path / "run", training=_training(max_steps=2))
    run.trainer.train()
    base, _ = load_plain(tiny_dir)
    reference = run.trainer.ref_model
    assert not any(p.requires_grad for p in reference.parameters())
    for name, value in base.state_dict().items():
        assert torch.equal(reference.state_dict()[name], value), name
    projector = dict(run.trainer.model.named_parameters())
    tuned = [n for n, p in projector.items() if "multi_modal_projector" in n and p.requires_grad]
    assert tuned and any(not torch.equal(projector[n].detach(), base.state_dict()[n.removeprefix("base_model.model.")])
                         for n in tuned if n.removeprefix("base_model.model.") in base.state_dict())


def test_gradient_accumulation_gives_the_losses_of_the_whole_batch(tiny_dir, tmp_path):
    """Two micro-batches of one pair = one batch of two: TRL's per-pair mean loss is scaled once per step."""
    prefs = _prefs(tmp_path / "images")
    losses = [train_align(*load_plain(tiny_dir), prefs, objective=ObjectiveConfig(), strategy="full",
                          output_dir=tmp_path / f"run{batch}", training=_training(max_steps=3, batch_size=batch,
                                                                                grad_accum=accum)).losses
              for batch, accum in ((2, 1), (1, 2))]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6) and losses[0][-1] < losses[0][0]


class _StopAfter(TrainerCallback):
    """Simulates a crash: stops training right after global step ``k`` was checkpointed."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.k:
            control.should_save = True
            control.should_training_stop = True
        return control


@pytest.mark.parametrize(("method", "strategy"), [("dpo", "top(k=1)+projector"), ("mdpo", LORA), ("kto", LORA)])
def test_killed_and_resumed_alignment_gives_the_same_losses(tiny_dir, tmp_path, monkeypatch, method, strategy):
    prefs = _prefs(tmp_path / "images")
    cfg = _training(max_steps=5, save_steps=100, lr_scheduler="cosine", warmup_ratio=0.2)
    objective = ObjectiveConfig(method=method)

    def run(out: Path, resume: bool = False):
        return train_align(*load_plain(tiny_dir), prefs, objective=objective, strategy=strategy,
                           output_dir=out, training=cfg, resume=resume)

    full = run(tmp_path / "full")
    # First run: interrupted after step 2 (checkpoint-2 written), as a crash would leave it.
    real_add = SFTTrainer.add_callback  # every align trainer is an SFTTrainer
    monkeypatch.setattr(SFTTrainer, "add_callback", lambda self, cb: (real_add(self, cb),
                                                                      real_add(self, _StopAfter(2)))[0])
    run(tmp_path / "part")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "part").glob("checkpoint-*")) == ["checkpoint-2"]
    resumed = run(tmp_path / "part", resume=True)
    assert resumed.losses == pytest.approx(full.losses, abs=1e-6) and len(resumed.losses) == 5
    logs = [[json.loads(line) for line in (tmp_path / d / "losses.jsonl").read_text().splitlines()]
            for d in ("full", "part")]
    for whole, pieced in zip(*logs):
        assert pieced == pytest.approx(whole, abs=1e-6)


# ---- the command line --------------------------------------------------------------------------

@pytest.fixture
def main(monkeypatch):
    """``mmtune.cli.main`` with the align command registered (the CLI's module list may not have it yet)."""
    from mmtune import cli

    module = "mmtune.recipes.align.commands"
    if module not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, module))
    return cli.main


def _write_config(tmp_path: Path, tiny_dir: Path, prefs: list[Preference]) -> Path:
    data = write_preferences(tmp_path / "prefs" / "pairs.jsonl", prefs)
    config = tmp_path / "align.yaml"
    config.write_text(f"model: {tiny_dir}\ndata:\n  - path: {data}\nstrategy: '{LORA}'\n"
                      f"output_dir: {tmp_path / 'run'}\ntraining:\n  max_steps: 2\n  batch_size: 2\n  save_steps: 0\n")
    return config


def test_align_command_trains_and_prints_a_summary(tiny_dir, tmp_path, capsys, main):
    config = _write_config(tmp_path, tiny_dir, _prefs(tmp_path / "prefs" / "images", n=4))
    assert main(["align", str(config), "--set", "objective.loss_type=ipo"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "dpo" and summary["steps"] == 2
    assert json.loads((tmp_path / "run" / "align_config.json").read_text())["objective"]["loss_type"] == "ipo"
    assert (tmp_path / "run" / "final" / "mmtune.json").is_file()


def test_bad_pairs_fail_before_step_0_naming_them_or_are_skipped(tiny_dir, tmp_path, capsys, main):
    prefs = _prefs(tmp_path / "prefs" / "images", n=4)  # images may not lie outside the data's folder
    prefs[1].rejected = prefs[1].chosen
    config = _write_config(tmp_path, tiny_dir, prefs)
    assert main(["align", str(config)]) == 2
    err = capsys.readouterr().err
    assert "p1" in err and "chosen and rejected are the same" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "final").exists()
    assert main(["align", str(config), "--skip-invalid"]) == 0
    record = json.loads((tmp_path / "run" / "final" / "mmtune.json").read_text())
    assert (record["meta"]["num_records"], record["meta"]["num_skipped"]) == (3, 1)


def test_unpaired_records_need_kto(tiny_dir, tmp_path):
    prefs = [Preference(p.id, p.messages, p.images, p.chosen, None, True) for p in _prefs(tmp_path / "images", n=2)]
    with pytest.raises(ValueError, match="use method kto"):
        build_trainer(*load_plain(tiny_dir), prefs, objective=ObjectiveConfig(), strategy=LORA,
                      output_dir=tmp_path / "run", training=_training())


# ---- mDPO's rejected image ---------------------------------------------------------------------

def test_mdpo_image_is_a_seeded_crop_or_the_one_the_data_names(tmp_path):
    from mmtune.recipes.align.mdpo import corrupted_image

    pair, other = _prefs(tmp_path / "images", n=2)
    image = corrupted_image(pair, seed=3)
    assert image.size == (24, 16) and list(image.getdata()) == list(corrupted_image(pair, seed=3).getdata())
    assert list(image.getdata()) != list(Image.open(pair.images[0]).convert("RGB").getdata())
    assert corrupted_image(pair, "mask", seed=3).size == (24, 16)

    Image.new("RGB", (24, 16), "white").save(tmp_path / "images" / "m_prime.png")
    named = Preference(other.id, other.messages, other.images, other.chosen, other.rejected,
                       meta={"image_corruption": {"method": "crop", "image": "m_prime.png"}},
                       root=str(tmp_path / "images"))
    assert corrupted_image(named) == str(tmp_path / "images" / "m_prime.png")


def test_grpo_settings_come_from_the_grpo_section_with_the_shared_strategy():
    from mmtune.config import ConfigError, from_dict
    from mmtune.recipes.align.config import AlignConfig

    config = from_dict(AlignConfig, {"model": "m", "data": [{"path": "p"}], "objective": {"method": "grpo"},
                                     "strategy": "full", "grpo": {"num_generations": 2, "batch_size": 4}})
    settings = config.grpo_settings()
    assert (settings.strategy, settings.num_generations, settings.batch_size) == ("full", 2, 4)
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        from_dict(AlignConfig, {"model": "m", "data": [{"path": "p"}], "objective": {"method": "grpo"},
                                "grpo": {"num_generations": 3, "batch_size": 4}})
    with pytest.raises(ConfigError, match="set it once for every method"):
        from_dict(AlignConfig, {"model": "m", "data": [{"path": "p"}], "objective": {"method": "grpo"},
                                "grpo": {"strategy": "full"}})
