"""The BatchNorm re-estimation convention as a setting (`bn_recompute: {batch_size, weighting}`):
`batch` weighs every batch the same (PyTorch's update_bn), `samples` weighs each batch by its size
(Garipov et al.'s update_bn). Each is compared with its definition on data whose last batch is
short, and a sweep with each convention agrees with PyTorch on every point and says which it used."""
import numpy as np
import pytest
import torch
from torch import nn

from basin import results
from basin import torch as bridge

SPEC = """model:
  input: [2]
  layers:
    - {type: linear, out_features: 12}
    - batchnorm1d
    - relu
    - {type: linear, out_features: 2}
data: {source: spirals, samples: 600, noise: 0.05, test_fraction: 0.25, seed: 4}
train: {optimizer: adam, lr: 0.01, epochs: 2, batch_size: 32, seed: 2}
"""


def definition(x, batch, weighting):
    """Running mean and variance by definition: batch statistics (unbiased variance) averaged with
    equal weights per batch or with weights proportional to the batch sizes."""
    x = x.astype(np.float64)
    chunks = [x[i:i + batch] for i in range(0, len(x), batch)]
    weights = np.ones(len(chunks)) if weighting == "batch" else np.array([len(c) for c in chunks], float)
    weights /= weights.sum()
    mean = sum(w * c.mean(0) for w, c in zip(weights, chunks))
    var = sum(w * c.var(0, ddof=1) for w, c in zip(weights, chunks))
    return mean, var


@pytest.mark.parametrize("weighting", ["batch", "samples"])
def test_recompute_matches_its_definition_with_a_short_last_batch(weighting):
    x = np.random.default_rng(3).normal(size=(10, 3)) * [1.0, 4.0, 0.5] + [0.0, 2.0, -1.0]
    norm = nn.BatchNorm1d(3)
    bridge.recompute_batchnorm(norm, torch.from_numpy(x.astype(np.float32)), batch=4, weighting=weighting)
    mean, var = definition(x.astype(np.float32), 4, weighting)
    assert np.allclose(norm.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    assert np.allclose(norm.running_var.numpy(), var, rtol=1e-5, atol=1e-6)
    other = definition(x.astype(np.float32), 4, "samples" if weighting == "batch" else "batch")
    assert not np.allclose(mean, other[0], rtol=1e-4), "a short last batch must tell the conventions apart"


def test_a_bad_setting_is_refused_in_one_sentence():
    for spec, message in (({"bn_recompute": {"batch_size": 0}}, "batch_size"),
                          ({"bn_recompute": {"weighting": "mean"}}, "weighting"),
                          ({"bn_recompute": [1]}, "mapping")):
        with pytest.raises(ValueError, match=message):
            bridge.recompute_settings(spec)


@pytest.fixture(scope="module")
def runs(basin, workdir):
    (workdir / "model.yaml").write_text(SPEC)
    basin("train", "model.yaml", "-o", "a.safetensors", "--seed", "0")
    basin("train", "model.yaml", "-o", "b.safetensors", "--seed", "1")
    basin("data", "model.yaml", "-o", "data")
    made = {}
    for weighting in ("batch", "samples"):
        # 450 training samples in batches of 100: the last holds 50.
        (workdir / f"{weighting}.yaml").write_text(
            SPEC + f"bn_recompute: {{batch_size: 100, weighting: {weighting}}}\n"
            "jobs:\n  - interpolate: {name: line, from: a.safetensors, to: b.safetensors, t: \"-0.5:1.5:7\", "
            "bn: recompute}\n")
        basin("run", f"{weighting}.yaml", "--out", f"run-{weighting}", "--workers", "0")
        made[weighting] = str(workdir / f"run-{weighting}" / "results" / "line.npz")
    return made


@pytest.mark.parametrize("weighting", ["batch", "samples"])
def test_a_sweep_uses_the_convention_it_names_and_pytorch_agrees(basin, workdir, runs, weighting):
    result = results.load(runs[weighting])
    assert result.metadata["bn"] == "recompute"
    assert result.metadata["bn_recompute"] == {"batch_size": 100, "weighting": weighting}
    check = basin.script("basin-crosscheck", runs[weighting], "--data", f"{workdir}/data", "--samples", "7",
                         "--tolerance", "1e-5")
    assert check.returncode == 0 and "7 of 7 points agree" in check.stdout, check.stdout[-2000:] + check.stderr
    other = results.load(runs["samples" if weighting == "batch" else "batch"])
    assert not np.allclose(result.arrays["train_loss"], other.arrays["train_loss"], rtol=1e-6), \
        "the two conventions gave the same losses: the setting did not reach the evaluation"
