"""WiSE-FT, task arithmetic, TIES and DARE on tiny tensors, against values worked by hand."""
import pytest
import torch

from mmtune.methods.weights import dare, merge_task_vectors, task_arithmetic, task_vector, ties_merge, wise_ft


def _t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_wise_ft_golden_and_int_buffers_copied():
    base = {"w": _t(1.0, 2.0), "b": _t(0.0), "pos": torch.tensor([0, 1])}
    tuned = {"w": _t(3.0, -2.0), "b": _t(1.0), "pos": torch.tensor([0, 1])}
    out = wise_ft(base, tuned, 0.25)  # 0.75 * base + 0.25 * tuned
    assert torch.equal(out["w"], _t(1.5, 1.0))
    assert torch.equal(out["b"], _t(0.25))
    assert out["pos"].dtype == torch.long
    assert torch.equal(wise_ft(base, tuned, 0.0)["w"], base["w"])
    assert torch.equal(wise_ft(base, tuned, 1.0)["w"], tuned["w"])
    with pytest.raises(ValueError, match="alpha"):
        wise_ft(base, tuned, 1.5)


def test_task_vector_and_mismatch():
    assert torch.equal(task_vector({"w": _t(1, 2)}, {"w": _t(4, 0)})["w"], _t(3, -2))
    with pytest.raises(ValueError, match="lora_A"):
        task_vector({"w": _t(1)}, {"w": _t(1), "lora_A": _t(1)})


BASE = {"w": _t(0, 0, 0, 0)}
TV1 = {"w": _t(1, -2, 0, 4)}
TV2 = {"w": _t(1, 2, -3, 0)}


def test_task_arithmetic_golden():
    # 0.5 * ([1,-2,0,4] + [1,2,-3,0]) = 0.5 * [2,0,-3,4]
    out = task_arithmetic(BASE, [TV1, TV2], scale=0.5)
    assert torch.equal(out["w"], _t(1, 0, -1.5, 2))


def test_ties_golden():
    # density 0.5 keeps 2 of 4 by magnitude: tv1 -> [0,-2,0,4], tv2 -> [0,2,-3,0].
    # Elected sign from the sums [0,0,-3,4] -> [+,+,-,+] (a zero sum counts as +).
    # Agreeing values: idx1 only tv2's +2, idx2 tv2's -3, idx3 tv1's 4; mean over agreeing ones.
    out = ties_merge(BASE, [TV1, TV2], density=0.5)
    assert torch.equal(out["w"], _t(0, 2, -3, 4))
    assert torch.equal(merge_task_vectors(BASE, [TV1, TV2], "ties", density=0.5)["w"], out["w"])


def test_dare_keeps_or_rescales_and_is_seeded():
    tv = {"w": torch.arange(1, 201, dtype=torch.float32)}
    base = {"w": torch.zeros(200)}
    a = dare(base, [tv], density=0.5, seed=3)["w"]
    # every delta is dropped (0) or kept and rescaled by 1 / 0.5
    assert torch.all((a == 0) | (a == 2 * tv["w"]))
    assert 0 < int((a != 0).sum()) < 200
    assert torch.equal(a, dare(base, [tv], density=0.5, seed=3)["w"])
    assert not torch.equal(a, dare(base, [tv], density=0.5, seed=4)["w"])


def test_unknown_merge_method():
    with pytest.raises(ValueError, match="task_arithmetic"):
        merge_task_vectors(BASE, [TV1], "average")
