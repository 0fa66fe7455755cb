"""A tuned checkpoint missing weights its strategy trains is an error naming the file, never the
untuned base model answering in its place (issue 14, item 3); through load_tuned and the CLI."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmtune.cli import main
from mmtune.models.loading import UntrustedPickleError, load_model
from mmtune.models.tiny import save_tiny
from mmtune.strategies import apply_strategy
from mmtune.strategies.checkpoint import (
    ADAPTER_PICKLE,
    ADAPTER_WEIGHTS,
    EXTRA_WEIGHTS,
    MissingWeightsError,
    load_tuned,
    save_tuned,
)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny("llava", tmp_path_factory.mktemp("base") / "base")


def _tuned(base_dir, out, spec):
    """A delta checkpoint of ``spec`` whose trained tensors all differ from the base's."""
    base = load_model(base_dir)
    model, _ = apply_strategy(base.model, spec, base.groups)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return save_tuned(model, base.processor, out, spec, {"base_model": str(base_dir)})


def _drop_one_tensor(file):
    tensors = load_file(str(file))
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, str(file))
    return dropped


@pytest.fixture(scope="module")
def lora_dir(base_dir, tmp_path_factory):
    return _tuned(base_dir, tmp_path_factory.mktemp("lora") / "tuned", "lora(r=2)+projector")


def _copy(src, dst, without=()):
    import shutil

    shutil.copytree(src, dst)
    for name in without:
        (dst / name).unlink()
    return dst


def test_missing_adapter_file_is_named(lora_dir, tmp_path):
    broken = _copy(lora_dir, tmp_path / "ckpt", without=[ADAPTER_WEIGHTS])
    with pytest.raises(MissingWeightsError, match=rf"{ADAPTER_WEIGHTS} is missing: strategy 'lora.*untuned base"):
        load_tuned(broken)


def test_missing_extra_weights_file_is_named(lora_dir, tmp_path):
    # lora+projector keeps the selectively tuned projector in mmtune_weights.safetensors.
    broken = _copy(lora_dir, tmp_path / "ckpt", without=[EXTRA_WEIGHTS])
    with pytest.raises(MissingWeightsError, match=rf"{EXTRA_WEIGHTS} is missing: .*multi_modal_projector"):
        load_tuned(broken)


@pytest.mark.parametrize("file", [ADAPTER_WEIGHTS, EXTRA_WEIGHTS])
def test_file_lacking_a_trained_tensor_is_named(lora_dir, tmp_path, file):
    broken = _copy(lora_dir, tmp_path / "ckpt")
    _drop_one_tensor(broken / file)
    with pytest.raises(MissingWeightsError, match=rf"{file}: lacks 1 tensor\(s\)"):
        load_tuned(broken)


def test_hand_written_adapter_without_its_file_is_named(base_dir, tmp_path):
    tuned = _tuned(base_dir, tmp_path / "tuned", "adapter(bottleneck=4)")
    (tuned / EXTRA_WEIGHTS).unlink()
    with pytest.raises(MissingWeightsError, match=EXTRA_WEIGHTS):
        load_tuned(tuned)


def test_pickled_adapter_needs_allow_pickle_and_then_loads_the_same_weights(lora_dir, tmp_path):
    pickled = _copy(lora_dir, tmp_path / "ckpt", without=[ADAPTER_WEIGHTS])
    torch.save(load_file(str(lora_dir / ADAPTER_WEIGHTS)), pickled / ADAPTER_PICKLE)
    with pytest.raises(UntrustedPickleError, match=rf"{ADAPTER_PICKLE}: .*--allow-pickle"):
        load_tuned(pickled)
    from_pickle = dict(load_tuned(pickled, allow_pickle=True).model.named_parameters())
    reference = dict(load_tuned(lora_dir).model.named_parameters())
    lora_b = [n for n in reference if "lora_B" in n]
    # PEFT starts lora_B at zero, so non-zero values equal to the safetensors load are the trained ones.
    assert lora_b and all(reference[n].abs().sum() > 0 for n in lora_b)
    assert all(torch.equal(from_pickle[n], reference[n]) for n in reference if "lora_" in n)


@pytest.mark.parametrize(
    "argv",
    [
        ["infer", "--model", "{ckpt}", "--prompt", "what shape"],
        ["eval", "--model", "{ckpt}", "--tasks", "world_vqa", "--n", "2"],
        ["inspect", "{ckpt}"],
        ["export", "--model", "{ckpt}", "--out", "{out}"],
    ],
    ids=lambda a: a[0],
)
def test_every_command_refuses_a_checkpoint_without_its_adapter(lora_dir, tmp_path, capsys, argv):
    broken = _copy(lora_dir, tmp_path / "ckpt", without=[ADAPTER_WEIGHTS])
    argv = [a.format(ckpt=broken, out=tmp_path / "plain") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # transformers' "Loading weights" progress bar may precede the message on stderr.
    (line,) = [line for line in err.splitlines() if line.startswith("mmtune ")]
    assert line.startswith(f"mmtune {argv[0]}: error: {broken / ADAPTER_WEIGHTS} is missing")
    assert not (tmp_path / "plain").exists()
