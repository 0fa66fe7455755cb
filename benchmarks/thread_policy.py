"""CPU thread policy for small models: mmtune's SFT at 1 thread vs all cores, quiet and under load.

``PYTHONPATH=. python benchmarks/thread_policy.py [--steps 40] [--rounds 4] [--out FILE]``

Each run is ``sft_contenders.py mmtune`` (the SFT comparison's child: the tiny LLaVA, LoRA r=8, batch
8, fp32) in a fresh process with one policy: ``1`` thread, ``N`` threads (N = the cores torch sees)
with OpenMP's default wait policy, or ``N`` threads with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads
sleep instead of spinning). Every policy runs once per round, in rotated order, first on a quiet
machine and then beside a load: one single-threaded process doing matrix products all along, as a
second job on the machine would. Reported per condition and policy: median train-loop samples/s
(min-max) and the median per-round ratio to one thread. The bench's CPU workers and ``training.
cpu_threads: auto`` follow from what this measures.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOAD = ("import torch; torch.set_num_threads(1); a = torch.randn(512, 512)\n"
        "while True: a = (a @ a).tanh()")


def policies(cores: int) -> dict[str, dict[str, str]]:
    return {"1 thread": {"OMP_NUM_THREADS": "1"},
            f"{cores} threads": {"OMP_NUM_THREADS": str(cores)},
            f"{cores} threads, passive wait": {"OMP_NUM_THREADS": str(cores), "OMP_WAIT_POLICY": "PASSIVE"}}


def one_run(work: Path, env: dict[str, str], threads: int) -> float:
    settings = json.loads((work / "settings.json").read_text()) | {"torch_threads": threads}
    (work / "run_settings.json").write_text(json.dumps(settings))
    result = work / "result.json"
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    subprocess.run([sys.executable, str(HERE / "sft_contenders.py"), "mmtune", "--settings", str(work / "run_settings.json"),
                    "--model-dir", str(work / "model"), "--data", str(work / "data" / "mmtune.jsonl"),
                    "--result", str(result)], env=base_env | env, check=True, capture_output=True)
    return json.loads(result.read_text())["samples_per_s"]


def measure(work: Path, named: dict[str, dict[str, str]], rounds: int, log) -> dict[str, list[float]]:
    from sft_throughput import rotated_orders

    rates: dict[str, list[float]] = {n: [] for n in named}
    for r, order in enumerate(rotated_orders(list(named), rounds)):
        for name in order:
            rates[name].append(one_run(work, named[name], int(named[name]["OMP_NUM_THREADS"])))
            log(f"  round {r} {name}: {rates[name][-1]:.1f} samples/s")
    return rates


def main() -> int:
    sys.path.insert(0, str(HERE))
    from sft_throughput import Settings, export_data, mixed_length_samples, spread

    from mmtune.models.tiny import save_tiny

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    named = policies(cores)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_tiny("llava", work / "model")
        export_data(mixed_length_samples(args.steps * 8), work / "data")
        (work / "settings.json").write_text(json.dumps(dataclasses.asdict(Settings(steps=args.steps))))
        for condition in ("quiet", "under load"):
            print(condition, flush=True)
            load = subprocess.Popen([sys.executable, "-c", LOAD]) if condition == "under load" else None
            try:
                rates = measure(work, named, args.rounds, lambda m: print(m, flush=True))
            finally:
                if load is not None:
                    load.kill()
                    load.wait()
            one = rates["1 thread"]
            results[condition] = {name: {"samples_per_s": spread(v),
                                         "vs_1_thread": statistics.median(a / b for a, b in zip(v, one)), "runs": v}
                                  for name, v in rates.items()}
    print("| condition | policy | samples/s median (min-max) | / 1 thread |\n|---|---|---|---|")
    for condition, by_policy in results.items():
        for name, r in by_policy.items():
            s = r["samples_per_s"]
            print(f"| {condition} | {name} | {s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f}) | {r['vs_1_thread']:.2f}x |")
    if args.out:
        args.out.write_text(json.dumps({"steps": args.steps, "rounds": args.rounds, "cores": cores, "results": results},
                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
