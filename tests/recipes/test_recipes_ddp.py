"""DDP on CPU: two processes (gloo) train one LoRA run through the CLI; the checkpoint loads and trained."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.recipes.conftest import make_samples, write_messages_jsonl


@pytest.mark.slow
def test_two_process_ddp_run_saves_a_trained_checkpoint(tiny_dir, tmp_path):
    from mmtune.strategies.checkpoint import load_tuned

    write_messages_jsonl(tmp_path / "train.jsonl", make_samples(8, root=tmp_path / "img"))
    config = tmp_path / "ddp.yaml"
    config.write_text(
        f"model: {tiny_dir}\ndata: [{{path: {tmp_path / 'train.jsonl'}}}]\n"
        f"strategy: lora(r=4, alpha=8, groups=llm)\noutput_dir: {tmp_path / 'run'}\n"
        "training: {max_steps: 3, batch_size: 2, save_steps: 0, lr: 0.01, logging_steps: 1, warmup_ratio: 0.0}\n"
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "mmtune.cli",
           "train", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"final"') == 1  # only rank 0 reports and saves

    final = tmp_path / "run" / "final"
    meta = json.loads((final / "mmtune.json").read_text())["meta"]
    assert meta["world_size"] == 2 and meta["steps"] == 3 and len(meta["losses"]) == 3
    tuned = load_tuned(final).model
    lora_b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().max() > 0 for p in lora_b)  # LoRA B starts at zero: it trained
