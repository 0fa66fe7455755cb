"""One SFT run of one contender, the child process of ``sft_throughput.py``, in that tool's venv.

Imports only the standard library, torch, transformers and the contender's own package (never mmtune
outside its own run), so it runs in LLaMA-Factory's and ms-swift's venvs too. All four train on
``transformers.Trainer``; ``_record_trainer`` wraps its ``train`` (train-loop seconds, excluding
start-up) and ``training_step`` (each step's loss, exactly) the same way for all of them. Writes one
JSON object to ``--result``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

# The tiny LLaVA's chat turns (mmtune.models.processors.chat_template): ChatML, no system message.
TURN_START, TURN_END = "<|im_start|>", "<|im_end|>"
USER_PREFIX = TURN_START + "user\n"
ASSISTANT_PREFIX = TURN_END + "\n" + TURN_START + "assistant\n"  # closes the user turn, opens the answer


def _record_trainer() -> dict[str, Any]:
    """Patch ``transformers.Trainer`` so any trainer built on it fills the returned record."""
    import torch
    import transformers

    record: dict[str, Any] = {"losses": []}
    train, training_step = transformers.Trainer.train, transformers.Trainer.training_step

    def timed_train(self, *args, **kwargs):
        record["trainable_params"] = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        record["applied"] = _applied(self, torch.get_num_threads())
        start = time.perf_counter()
        try:
            return train(self, *args, **kwargs)
        finally:
            record["train_seconds"] = time.perf_counter() - start

    def logged_step(self, *args, **kwargs):
        loss = training_step(self, *args, **kwargs)
        record["losses"].append(float(loss))
        return loss

    transformers.Trainer.train, transformers.Trainer.training_step = timed_train, logged_step
    return record


def _applied(trainer: Any, threads: int) -> dict[str, Any]:
    """The settings this trainer really runs with, read back from it, to check they were equalised."""
    a = trainer.args
    return {"dtype": str(next(trainer.model.parameters()).dtype), "bf16": a.bf16, "fp16": a.fp16,
            "gradient_checkpointing": bool(getattr(trainer.model, "is_gradient_checkpointing", False)),
            "batch_size": a.per_device_train_batch_size * a.gradient_accumulation_steps, "lr": a.learning_rate,
            "lr_scheduler": str(getattr(a.lr_scheduler_type, "value", a.lr_scheduler_type)), "warmup": a.warmup_steps,
            "weight_decay": a.weight_decay, "max_grad_norm": a.max_grad_norm, "seed": a.seed, "data_seed": a.data_seed,
            "optim": str(getattr(a.optim, "value", a.optim)), "adam": [a.adam_beta1, a.adam_beta2, a.adam_epsilon],
            "torch_threads": threads, "libraries": _libraries()}


# The libraries every contender's step runs through: each tool pins its own, and their per-op overhead
# differs between releases (not equalisable: LF 0.9.5 caps transformers below mmtune's floor).
LIBRARIES = ("torch", "transformers", "peft", "accelerate")


def _libraries() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def found(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return ", ".join(f"{name} {found(name)}" for name in LIBRARIES)


def _decoder_linears(s: dict[str, Any]) -> str:
    """PEFT's regex for the decoder's linear layers only, as mmtune's ``groups=llm``: CLIP's q/k/v_proj,
    which a plain name list would also match, stay frozen."""
    return rf".*language_model.*\.({'|'.join(s['lora_targets'])})"


def run_mmtune(s: dict[str, Any], model_dir: Path, data: Path, out: Path, strategy: str) -> None:
    from mmtune.data.readers import read_records
    from mmtune.models import load_model
    from mmtune.recipes.sft import TrainingConfig, train_sft

    loaded = load_model(model_dir)
    spec = "full" if strategy == "full" else (
        f"lora(r={s['lora_r']}, alpha={s['lora_alpha']}, dropout={s['lora_dropout']}, groups=llm)")
    training = TrainingConfig(lr=s["lr"], max_steps=s["steps"], batch_size=s["batch_size"],
                              lr_scheduler=s["lr_scheduler"], warmup_ratio=0.0, seed=s["seed"], save_steps=0,
                              logging_steps=s["steps"], bf16=False, gradient_checkpointing=False, report_to=["none"])
    train_sft(loaded.model, loaded.processor, read_records(data), strategy=spec, output_dir=out, training=training)


def run_trl(s: dict[str, Any], model_dir: Path, data: Path, out: Path, strategy: str) -> None:
    """TRL's own VLM path: its collator renders the chat template and masks to assistant tokens."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(s["seed"])
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    args = SFTConfig(output_dir=str(out), max_steps=s["steps"], per_device_train_batch_size=s["batch_size"],
                     learning_rate=s["lr"], lr_scheduler_type=s["lr_scheduler"], warmup_steps=0, seed=s["seed"],
                     data_seed=s["seed"], optim=s["optimizer"], adam_beta1=s["adam_betas"][0], adam_beta2=s["adam_betas"][1],
                     adam_epsilon=s["adam_epsilon"], save_strategy="no", eval_strategy="no", report_to=[],
                     logging_steps=s["steps"], max_length=None, assistant_only_loss=True, bf16=False, fp16=False,
                     gradient_checkpointing=False, use_cpu=True, dataloader_pin_memory=False)
    peft_config = LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=s["lora_dropout"],
                             target_modules=_decoder_linears(s))
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=processor, peft_config=peft_config)
    trainer.train()


def _hf_args(s: dict[str, Any], out: Path) -> dict[str, Any]:
    """The transformers TrainingArguments both LLaMA-Factory and ms-swift take by name."""
    return {"output_dir": str(out), "max_steps": s["steps"], "per_device_train_batch_size": s["batch_size"],
            "gradient_accumulation_steps": 1, "learning_rate": s["lr"], "lr_scheduler_type": s["lr_scheduler"],
            "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": 1.0, "optim": s["optimizer"],
            "adam_beta1": s["adam_betas"][0], "adam_beta2": s["adam_betas"][1], "adam_epsilon": s["adam_epsilon"], "seed": s["seed"],
            "data_seed": s["seed"], "bf16": False, "fp16": False, "save_strategy": "no", "eval_strategy": "no",
            "logging_steps": s["steps"], "report_to": "none", "dataloader_num_workers": 0,
            "dataloader_pin_memory": False}


def run_llamafactory(s: dict[str, Any], model_dir: Path, data: Path, out: Path, strategy: str) -> None:
    """LF's CLI arguments through its python API, with a template that renders the tiny LLaVA's own
    chat turns (LF's stock ``llava`` template is Vicuna-style with a system prompt)."""
    if importlib.util.find_spec("torchaudio") is None:
        # LF 0.9.5 imports torchaudio at module level for audio inputs only; no wheel matches CPU torch 2.13.
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    from llamafactory.data.formatter import StringFormatter
    from llamafactory.data.mm_plugin import get_mm_plugin
    from llamafactory.data.template import register_template
    from llamafactory.train.tuner import run_exp

    register_template(
        name="tiny_llava_chatml",
        format_user=StringFormatter(slots=[USER_PREFIX + "{{content}}" + ASSISTANT_PREFIX]),
        format_assistant=StringFormatter(slots=["{{content}}" + TURN_END]),  # the loss covers the answer + end
        stop_words=[TURN_END],
        mm_plugin=get_mm_plugin(name="llava", image_token="<image>"),
    )
    run_exp({
        **_hf_args(s, out), "stage": "sft", "do_train": True, "model_name_or_path": str(model_dir),
        "dataset": "fair", "dataset_dir": str(data), "template": "tiny_llava_chatml", "default_system": "",
        "cutoff_len": 4096, "overwrite_cache": True, "finetuning_type": "lora", "lora_rank": s["lora_r"],
        "lora_alpha": s["lora_alpha"], "lora_dropout": s["lora_dropout"], "lora_target": ",".join(s["lora_targets"]),
        "disable_gradient_checkpointing": True, "train_on_prompt": False, "plot_loss": False,
        "overwrite_output_dir": True,
    })


def run_ms_swift(s: dict[str, Any], model_dir: Path, data: Path, out: Path, strategy: str) -> None:
    """ms-swift's ``swift sft`` arguments through ``sft_main``, with a template of the tiny LLaVA's own
    chat turns on its ``llava1_5_hf`` template class (image-token expansion); its stock template is
    ``<s>USER: ... ASSISTANT:``. The data is not shuffled at load, only by the trainer's sampler."""
    from swift.pipelines import sft_main
    from swift.template import TemplateMeta, register_template
    from swift.template.templates.llava import LlavaHfTemplate

    register_template(TemplateMeta(
        "tiny_llava_chatml", prefix=[], prompt=[USER_PREFIX + "{{QUERY}}" + ASSISTANT_PREFIX],
        chat_sep=[TURN_END + "\n"], suffix=[TURN_END], template_cls=LlavaHfTemplate))
    hf = _hf_args(s, out)
    argv = [f"--{k}={v}" for k, v in hf.items()] + [
        f"--model={model_dir}", "--model_type=llava1_5_hf", "--check_model=false", "--template=tiny_llava_chatml",
        f"--dataset={data}", "--dataset_shuffle=false", "--split_dataset_ratio=0", "--max_length=4096",
        "--torch_dtype=float32", "--tuner_type=lora", f"--lora_rank={s['lora_r']}", f"--lora_alpha={s['lora_alpha']}",
        f"--lora_dropout={s['lora_dropout']}", f"--target_regex={_decoder_linears(s)}", "--freeze_vit=true",
        "--gradient_checkpointing=false", "--add_version=false", "--dataset_num_proc=1", "--use_hf=true",
    ]
    sft_main(argv)


CONTENDERS = {"mmtune": run_mmtune, "trl": run_trl, "llamafactory": run_llamafactory, "ms-swift": run_ms_swift}


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--settings", type=Path, required=True, help="Settings as JSON (sft_throughput.py)")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the data in this contender's format")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--strategy", choices=("lora", "full"), default="lora", help="full: mmtune only (memory)")
    args = parser.parse_args()
    import torch

    settings = json.loads(args.settings.read_text())
    torch.set_num_threads(settings["torch_threads"])
    record = _record_trainer()
    with tempfile.TemporaryDirectory() as tmp:
        CONTENDERS[args.contender](settings, args.model_dir, args.data, Path(tmp), args.strategy)
    if len(record["losses"]) != settings["steps"]:
        raise RuntimeError(f"{args.contender} ran {len(record['losses'])} steps, expected {settings['steps']}")
    samples = settings["steps"] * settings["batch_size"]
    args.result.write_text(json.dumps({**record, "samples_per_s": samples / record["train_seconds"],
                                       "peak_memory_mb": _peak_memory_mb(), "strategy": args.strategy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
