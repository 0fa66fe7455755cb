"""GRPO: verifiable rewards on golden cases, group-standardised advantages, the KL reference, a run end to end.

Reward values are worked out by hand from the definitions in REFERENCE.md §4 (VQA leave-one-out
accuracy, exact match, option letter, IoU); advantages from GRPO's (r - mean) / std as TRL 1.16
computes it (grpo_trainer.py: unbiased std of each group of G, plus 1e-4 in the denominator).
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from mmtune.data.collate import GenerationCollator
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.models.tiny import build_tiny, tiny_families
from mmtune.recipes.align import rewards
from mmtune.recipes.align.grpo import REWARD_LOG, GRPOSettings, prepare_grpo, train_grpo
from mmtune.recipes.align.rewards import answer_reward, check_rewardable, format_reward, iou_reward, task_kind
from mmtune.recipes.infer import generate_answer, infer
from mmtune.strategies.checkpoint import load_tuned
from mmtune.world.tasks import get_world_task
from tests.recipes.conftest import load_plain

LORA = "lora(r=4, alpha=8, groups=llm)"


def _sample(kind: str, **meta) -> Sample:
    return Sample(f"{kind}-1", [user_turn("question", n_images=0)], [], {"kind": kind, **meta})


# --- rewards: golden cases ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, meta, completion, expected", [
    # VQA accuracy: "Two." normalises to "2"; 2 of 10 humans said 2: leaving out one of them leaves
    # 1 match (1/3), leaving out another answer leaves 2 (2/3): (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    ("vqa", {"answers": ["2", "two"] + ["3"] * 8}, "Two.", 0.6),
    ("vqa", {"answers": ["2"] * 10}, "3", 0.0),
    # exact match: lower-cased, stripped, one trailing period dropped
    ("exact_match", {"answer": "purple"}, " Purple.", 1.0),
    ("exact_match", {"answer": "purple"}, "purple circle", 0.0),
    ("counting", {"answer": "3"}, "3", 1.0),
    # option letter, read as ScienceQA-style extraction reads it
    ("multiple_choice", {"answer": "B", "choices": ["star", "cross", "ring"]}, "(B)", 1.0),
    ("multiple_choice", {"answer": "B", "choices": ["star", "cross", "ring"]}, "The answer is C.", 0.0),
    ("multiple_choice", {"answer": "B", "choices": ["star", "cross", "ring"]}, "cross", 1.0),  # unique option text
    # yes/no from the start of the answer
    ("yesno", {"answer": "yes"}, "Yes, there is.", 1.0),
    ("mme", {"answer": "no", "category": "existence", "image_id": "x"}, "yes", 0.0),
    # grounding: IoU, not acc@0.5: [.1,.1,.3,.3] vs [.2,.2,.4,.4] meet in .1 x .1 = .01 of .04 + .04 - .01 = .07
    ("grounding", {"box": [0.2, 0.2, 0.4, 0.4]}, "[0.1, 0.1, 0.3, 0.3]", 1 / 7),
    ("grounding", {"box": [0.2, 0.2, 0.4, 0.4]}, "[0.2, 0.2, 0.4, 0.4]", 1.0),
    ("grounding", {"box": [0.2, 0.2, 0.4, 0.4]}, "left of the star", 0.0),
])
def test_answer_reward_is_the_eval_score(kind, meta, completion, expected):
    assert answer_reward(completion, _sample(kind, **meta)) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("completion, expected", [
    # the scene holds a circle and a square; reward = F1 of the objects named (precision = 1 - CHAIR_i)
    ("There is a circle and a square.", 1.0),
    ("A large blue circle.", 2 / 3),  # precision 1, recall 1/2
    ("a circle and a star.", 0.5),  # precision 1/2, recall 1/2
    ("a circle, a square and a star", 0.8),  # precision 2/3, recall 1
    ("nothing here", 0.0),  # names no object: nothing described
])
def test_description_reward_reads_world_scenes_as_world_describe_does(completion, expected):
    """World descriptions are judged as the eval task world_describe judges them: world object names,
    truth = the scene's exact object list (the caption naming a star does not make a star present)."""
    sample = Sample("d", [user_turn("Describe the image in detail.", n_images=0)], [],
                    {"task": "describe", "objects": ["circle", "square"], "captions": ["a circle and a star."]})
    assert answer_reward(completion, sample) == pytest.approx(expected)
    assert format_reward(completion, sample) == float(expected > 0)


def test_description_reward_on_coco_counts_caption_objects_and_synonyms():
    """COCO: truth = the instance objects plus those the reference captions name, as CHAIR's chair.py
    does ("man" is a person, "couch" present); "A dog and a cat." has precision 1/2, recall 1/3: F1 0.4."""
    sample = _sample("describe", objects=["dog", "person"], captions=["A man with a dog on a couch."])
    assert answer_reward("A dog and a cat.", sample) == pytest.approx(0.4)
    assert answer_reward("A person and a dog on a sofa.", sample) == pytest.approx(1.0)


def test_iou_reward_reads_boxes_in_the_family_format():
    sample = _sample("grounding", box=[0.2, 0.2, 0.4, 0.4])
    assert iou_reward("[100, 100, 300, 300]", sample, box_format="norm1000") == pytest.approx(1 / 7)
    assert iou_reward("[100, 100, 300, 300]", sample) == 0.0  # read as [0, 1] coordinates it lies far outside


@pytest.mark.parametrize("kind, meta, completion, expected", [
    ("multiple_choice", {"answer": "B", "choices": ["star", "cross", "ring"]}, "C", 1.0),  # wrong, but an option
    ("multiple_choice", {"answer": "B", "choices": ["star", "cross"]}, "C", 0.0),  # no option C
    ("multiple_choice", {"answer": "B", "choices": ["star", "cross"]}, "I do not know", 0.0),
    ("yesno", {"answer": "yes"}, "no", 1.0),
    ("yesno", {"answer": "yes"}, "maybe", 0.0),
    ("grounding", {"box": [0, 0, 1, 1]}, "(0.1, 0.2), (0.3, 0.4)", 1.0),
    ("grounding", {"box": [0, 0, 1, 1]}, "0.1 0.2", 0.0),
    ("exact_match", {"answer": "red"}, "  ", 0.0),
    ("exact_match", {"answer": "red"}, "blue", 1.0),
])
def test_format_reward_is_whether_the_task_parser_reads_an_answer(kind, meta, completion, expected):
    assert format_reward(completion, _sample(kind, **meta)) == expected


def test_world_samples_carry_their_kind_and_references():
    sciqa = get_world_task("sciqa").samples("train", 2)
    assert task_kind(sciqa[0]) == "multiple_choice"
    for sample in sciqa:  # the world's reference answer earns the full reward
        assert answer_reward(sample.text_of("assistant")[0], sample) == 1.0
    for task in ("refcoco", "describe", "vqa", "iconqa", "mme"):
        sample = get_world_task(task).samples("train", 1)[0]
        assert answer_reward(sample.text_of("assistant")[0], sample) == pytest.approx(1.0), task


def test_unrewardable_samples_are_named_before_training():
    caption = get_world_task("caption").samples("train", 1)[0]
    no_box = _sample("grounding")
    no_kind = Sample("plain", [user_turn("hi")], [], {})
    with pytest.raises(ValueError) as e:
        check_rewardable([caption, no_box, no_kind])
    message = str(e.value)
    assert "3 samples cannot be scored" in message
    assert f"{caption.id!r}" in message and "whole set" in message
    assert "'grounding-1': meta has no 'box'" in message
    assert "'plain'" in message and "meta['kind']" in message


@pytest.mark.parametrize("settings, option", [
    (dict(num_generations=4, batch_size=6), "batch_size=6 must be a multiple of num_generations=4"),
    (dict(num_generations=1, batch_size=2), "num_generations must be >= 2"),
    (dict(reward_weights={"answr": 1.0}), "answr are no rewards"),
    (dict(reward_weights={"answer": 0.0}), "at least one of answer, format"),
    (dict(beta=-0.1), "grpo.beta"),
    (dict(loss_type="ppo"), "grpo.loss_type='ppo' is unknown"),
])
def test_settings_name_the_option_at_fault(settings, option):
    with pytest.raises(ValueError, match=option.replace("(", r"\(").replace("[", r"\[")):
        GRPOSettings(**settings)


# --- the trainer -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", tiny_families())
def test_prompts_are_tokenized_as_mmtune_eval_asks_them(family):
    """TRL renders and encodes the prompts itself; they must be the token ids ``mmtune eval`` generates from."""
    from trl.data_utils import prepare_multimodal_messages

    from mmtune.recipes.align.grpo import _prompt_dataset

    _, processor = build_tiny(family)
    sample = get_world_task("sciqa").samples("train", 1)[0]
    row = _prompt_dataset([sample])[0]
    trl_inputs = processor.apply_chat_template(
        conversation=[prepare_multimodal_messages(row["prompt"], images=row["images"])],
        add_generation_prompt=True, tokenize=True, return_dict=True)
    eval_inputs = GenerationCollator(processor)([sample]).inputs
    assert trl_inputs["input_ids"][0] == eval_inputs["input_ids"][0].tolist()


def test_image_files_stay_paths_and_open_as_rgb(tmp_path):
    from PIL import Image

    from mmtune.recipes.align.grpo import _prompt_dataset

    path = tmp_path / "grey.png"
    Image.new("L", (12, 10), 77).save(path)
    in_memory = Image.new("RGB", (8, 8), "red")
    dataset = _prompt_dataset([Sample("file", [user_turn("what")], [path]),
                               Sample("memory", [user_turn("what")], [in_memory]),
                               Sample("text", [user_turn("what", n_images=0)], [])])
    assert dataset.data.nbytes < 2000  # the file is not copied in
    opened = [row["images"] for row in dataset]
    assert opened[0][0].mode == "RGB" and opened[0][0].getpixel((3, 3)) == (77, 77, 77)
    assert opened[1][0].tobytes() == in_memory.tobytes() and opened[2] == []
    assert [row["sample_index"] for row in dataset] == [0, 1, 2]


class ScriptedReward:
    """Hands out fixed rewards in completion order, standing in for a verifier."""

    def __init__(self) -> None:
        self.queue: list[float] = []

    def __call__(self, completion: str, sample: Sample, box_format: str = "norm1") -> float:
        return self.queue.pop(0) if self.queue else 0.0


def test_advantages_are_rewards_standardised_within_each_group(tiny_llava, tmp_path, monkeypatch):
    scripted = ScriptedReward()
    monkeypatch.setitem(rewards.REWARDS, "answer", scripted)
    model, processor = tiny_llava
    samples = get_world_task("sciqa").samples("train", 2)
    run = prepare_grpo(model, processor, samples, GRPOSettings(
        strategy=LORA, num_generations=4, batch_size=8, max_completion_length=4, save_steps=0,
        reward_weights={"answer": 1.0, "format": 0.0}), tmp_path)
    dataset = run.trainer.train_dataset
    scripted.queue = [1.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]
    out = run.trainer._generate_and_score_completions([dataset[0]] * 4 + [dataset[1]] * 4)
    # group 1: mean 0.5, unbiased std sqrt((0.25 + 0 + 0.25 + 0) / 3) = sqrt(1/6); 0.5 / (sqrt(1/6) + 1e-4)
    # group 2: mean 0.25, unbiased std sqrt((3 * 0.0625 + 0.5625) / 3) = 0.5; -0.25 / 0.5001, 0.75 / 0.5001
    expected = [1.2244449, 0.0, -1.2244449, 0.0, -0.4999000, -0.4999000, -0.4999000, 1.4997001]
    torch.testing.assert_close(out["advantages"].cpu(), torch.tensor(expected), atol=1e-6, rtol=0)


def _completion_logps(model, out) -> torch.Tensor:
    """log pi(completion token | prompt, image) of each completion token, by a plain forward pass."""
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, pixel_values=out["pixel_values"]).logits
    n = out["completion_ids"].shape[1]
    logps = logits[:, -n - 1:-1].float().log_softmax(-1)
    return logps.gather(-1, out["completion_ids"].unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("strategy, reference", [(LORA, "adapters disabled"), ("full", "frozen copy")])
def test_kl_reference_is_the_untuned_base(tiny_dir, tmp_path, strategy, reference):
    """With the policy moved away from the base, the reference log-probs are still the base's own:
    with LoRA the adapters disabled (no adapter copy, no model copy), else a frozen copy."""
    model, processor = load_plain(tiny_dir)
    samples = get_world_task("sciqa").samples("train", 1)
    run = prepare_grpo(model, processor, samples, GRPOSettings(
        strategy=strategy, beta=0.1, num_generations=2, batch_size=2, max_completion_length=4, save_steps=0),
        tmp_path)
    trainer = run.trainer
    assert reference in run.reference
    policy = trainer.accelerator.unwrap_model(trainer.model)
    if strategy == LORA:
        assert trainer.ref_model is None and list(policy.peft_config) == ["default"]
    torch.manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn_like(p))
    out = trainer._generate_and_score_completions([trainer.train_dataset[0]] * 2)
    base, _ = load_plain(tiny_dir)
    mask = out["completion_mask"].bool()
    expected = _completion_logps(base.to(out["prompt_ids"].device).eval(), out)
    torch.testing.assert_close(out["ref_per_token_logps"][mask], expected[mask], atol=1e-4, rtol=0)
    moved = _completion_logps(policy.eval(), out)
    assert (moved[mask] - expected[mask]).abs().max() > 1e-2  # the policy really differs from the reference


@pytest.mark.parametrize("strategy", ["full", LORA])
def test_grpo_run_tunes_the_model_and_writes_a_checkpoint_infer_loads(tiny_dir, tmp_path, strategy):
    model, processor = load_plain(tiny_dir)
    samples = get_world_task("sciqa").samples("train", 4)
    result = train_grpo(model, processor, samples, GRPOSettings(
        strategy=strategy, num_generations=4, batch_size=8, max_steps=3, lr=1e-2, save_steps=3,
        max_completion_length=6, reward_weights={"answer": 1.0, "format": 1.0}), tmp_path / "run")

    rows = [json.loads(line) for line in (tmp_path / "run" / REWARD_LOG).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and len(result.losses) == 3
    for row in rows:
        assert {"reward", "reward_std", "rewards/answer/mean", "rewards/format/std", "kl"} <= set(row)
    # some group's completions earned different rewards, so a gradient existed to change the weights
    assert any(r["reward_std"] > 0 for r in rows)

    if strategy == LORA:  # the reward log also goes to TensorBoard (report_to's default), in run/runs
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "run" / "runs"))
        events.Reload()
        logged = [(e.step, e.value) for e in events.Scalars("train/reward")]
        assert [step for step, _ in logged] == [1, 2, 3]
        assert [v for _, v in logged] == pytest.approx([r["reward"] for r in rows], abs=1e-6)

    final = result.final_dir
    assert (tmp_path / "run" / "checkpoint-3").is_dir()
    record = json.loads((final / "mmtune.json").read_text())
    assert record["meta"]["recipe"] == "grpo" and record["meta"]["steps"] == 3
    tuned = load_tuned(final).model.eval()
    base, _ = load_plain(tiny_dir)
    batch = GenerationCollator(processor)(samples[:2]).inputs
    with torch.no_grad():
        tuned_logits, base_logits = tuned(**batch).logits, base.eval()(**batch).logits
        trained_logits = result.model.eval()(**batch).logits
    torch.testing.assert_close(tuned_logits, trained_logits, atol=1e-5, rtol=0)  # the checkpoint is the trained model
    assert (tuned_logits - base_logits).abs().max() > 1e-4  # and GRPO changed it

    prompt, image = samples[0].text_of("user")[0], samples[0].images[0]
    assert infer(final, image, prompt, max_new_tokens=4) == generate_answer(result.model, processor, image, prompt, 4)


def test_killed_and_resumed_grpo_repeats_the_uninterrupted_run(tiny_dir, tmp_path):
    """A run of 4 steps killed before checkpoint-4 and final/ were written resumes from checkpoint-2, in
    the second epoch's prompts (2 prompts per step, 4 prompts): it samples the same completions, so
    its rewards and losses are the uninterrupted run's."""
    samples = get_world_task("sciqa").samples("train", 4)
    settings = GRPOSettings(strategy="full", num_generations=4, batch_size=8, max_steps=4, lr=1e-2, save_steps=2,
                            max_completion_length=6, reward_weights={"answer": 1.0, "format": 1.0})
    out = tmp_path / "run"
    full = train_grpo(*load_plain(tiny_dir), samples, settings, out)
    rewards_log = (out / REWARD_LOG).read_text()
    shutil.rmtree(out / "checkpoint-4")
    shutil.rmtree(out / "final")
    resumed = train_grpo(*load_plain(tiny_dir), samples, settings, out, resume=True)
    assert resumed.losses == full.losses and len(resumed.losses) == 4
    assert (out / REWARD_LOG).read_text() == rewards_log


def test_prompt_without_reference_answer_is_validated_and_trained(tiny_dir, tmp_path):
    model, processor = load_plain(tiny_dir)
    sample = get_world_task("sciqa").samples("train", 1)[0]
    prompt_only = Sample(sample.id, sample.prompt_messages(), sample.images, sample.meta)
    broken = Sample("two-images", [user_turn("what", n_images=2), assistant_turn("B")], sample.images, sample.meta)
    with pytest.raises(ValueError, match="two-images"):
        prepare_grpo(model, processor, [prompt_only, broken], GRPOSettings(num_generations=2, batch_size=2), tmp_path)
    run = prepare_grpo(model, processor, [prompt_only, broken], GRPOSettings(
        num_generations=2, batch_size=2, skip_invalid=True), tmp_path)
    assert run.num_samples == 1 and run.trainer.train_dataset[0]["prompt"][-1]["role"] == "user"
    assert run.trainer.max_completion_length == 8  # by default as long as `mmtune eval` lets a letter answer be
