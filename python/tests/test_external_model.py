"""A sweep of a model Basin cannot describe (`model: {external: NAME}`), end to end: the coordinator
treats its checkpoints as opaque files, a Basin worker beside the PyTorch worker is leased none of
its jobs, the PyTorch worker started with --model computes them all, and every point it returned
is the module evaluated at that point by hand (the state_dicts combined and scored in PyTorch)."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from basin import points as basin_points
from basin import results
from conftest import free_port

MODEL = '''
import torch
from torch import nn


class Gated(nn.Module):
    """A gated unit Basin has no layer for: tanh(a x) * sigmoid(b x), then a linear head."""

    def __init__(self):
        super().__init__()
        self.value = nn.Linear(2, 12)
        self.gate = nn.Linear(2, 12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x)))


def build():
    return Gated()
'''

SPEC = """
model: {external: gated-unit, flops_per_sample: 200}
data:
  source: files
  train: {features: data/train_x.npy, labels: data/train_y.npy}
  test_fraction: 0.25
  seed: 2
jobs:
  - interpolate: {name: line, from: a.safetensors, to: b.safetensors, t: "-0.5:1.5:9"}
  - plane: {name: plane, models: [a.safetensors, b.safetensors, c.safetensors], x: "0:1:3", y: "0:1:3"}
  - plane: {name: ortho, models: [a.safetensors, b.safetensors, c.safetensors], basis: orthonormal, x: "-1:2:3", y: "0:1:2"}
  - surface: {name: around, checkpoint: a.safetensors, x: "-1:1:3", y: "-1:1:3"}
sweep: {shard_points: 3}
"""


@pytest.fixture(scope="module")
def study(basin, workdir):
    (workdir / "model.py").write_text(MODEL)
    (workdir / "teacher.yaml").write_text(
        "model: {input: [2], layers: [{type: linear, out_features: 3}]}\n"
        "data: {source: teacher, samples: 400, features: 2, classes: 3}\n")
    basin("data", "teacher.yaml", "-o", "data")
    sys.path.insert(0, str(workdir))
    try:
        import model as user_model
    finally:
        sys.path.remove(str(workdir))
    for seed, name in enumerate(["a", "b", "c"]):
        torch.manual_seed(seed)
        save_file({k: v.contiguous() for k, v in user_model.build().state_dict().items()},
                  str(workdir / f"{name}.safetensors"))
    (workdir / "external.yaml").write_text(SPEC)
    return workdir, user_model


def test_basin_run_refuses_an_external_model_in_one_sentence(basin_binary, study):
    workdir, _ = study
    done = subprocess.run([basin_binary, "run", "external.yaml", "--out", "refused", "--workers", "2"],
                          cwd=workdir, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "'gated-unit' is external" in done.stderr and "basin-worker --model" in done.stderr, done.stderr


def test_pytorch_workers_alone_compute_an_external_model(basin_binary, study):
    workdir, user_model = study
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    logs = {name: open(workdir / f"{name}.log", "w") for name in ("coordinator", "basin-worker", "torch-worker")}
    coordinator = subprocess.Popen([basin_binary, "coordinator", "external.yaml", "--out", "run", "--bind", endpoint],
                                   cwd=workdir, stdout=logs["coordinator"], stderr=subprocess.STDOUT)
    workers = [
        subprocess.Popen([basin_binary, "worker", "--connect", endpoint, "--give-up-after", "30"], cwd=workdir,
                         stdout=logs["basin-worker"], stderr=subprocess.STDOUT),
        subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "basin-worker"), "--connect", endpoint,
                          "--name", "torch", "--model", "model.py:build", "--give-up-after", "30"], cwd=workdir,
                         stdout=logs["torch-worker"], stderr=subprocess.STDOUT),
    ]
    try:
        assert coordinator.wait(timeout=180) == 0, (workdir / "coordinator.log").read_text()[-3000:]
        for worker in workers:
            assert worker.wait(timeout=30) == 0
    finally:
        for process in [coordinator, *workers]:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs.values():
            log.close()
    coordinator_log = (workdir / "coordinator.log").read_text()
    # Had the Basin worker been leased a shard, it would have failed it saying the model is external.
    assert "is external" not in coordinator_log, coordinator_log[-3000:]
    assert "model:external" in coordinator_log  # the PyTorch worker announced it

    spec = {"data": {"source": "files", "train": {"features": "data/train_x.npy", "labels": "data/train_y.npy"},
                     "test_fraction": 0.25, "seed": 2}}
    train_x, train_y, test_x, test_y = basin_points.load_data(spec, str(workdir))
    checkpoints = {}
    for name in "abc":
        from safetensors.torch import load_file
        checkpoints[name] = load_file(str(workdir / f"{name}.safetensors"))
    module = user_model.build().eval()

    def score(weights, x, y):
        """Mean cross-entropy and accuracy of the module with these weights (float64 combination)."""
        module.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()})
        with torch.no_grad():
            out = module(torch.from_numpy(np.asarray(x, dtype=np.float32)))
            target = torch.from_numpy(np.asarray(y).astype(np.int64))
            return (nn.functional.cross_entropy(out.double(), target).item(),
                    (out.argmax(1) == target).double().mean().item())

    def combined(coefficients):
        return {k: sum(c * checkpoints[n][k].double() for n, c in coefficients.items()) for k in checkpoints["a"]}

    line = results.load(str(workdir / "run" / "results" / "line.npz"))
    assert line.arrays["train_loss"].shape == (9,)
    for t, loss, test_loss in zip(line.arrays["t"], line.arrays["train_loss"], line.arrays["test_loss"]):
        weights = combined({"a": 1 - float(t), "b": float(t)})
        expected, _ = score(weights, train_x, train_y)
        assert abs(loss - expected) <= 1e-5 * max(1.0, abs(expected)), (t, loss, expected)
        expected_test, _ = score(weights, test_x, test_y)
        assert abs(test_loss - expected_test) <= 1e-5 * max(1.0, abs(expected_test)), (t, test_loss, expected_test)

    # The barrier over t in [0, 1] against the models' own losses (Git Re-Basin's definition).
    ends = [score(combined({"a": 1.0}), train_x, train_y)[0], score(combined({"b": 1.0}), train_x, train_y)[0]]
    inside = [loss for t, loss in zip(line.arrays["t"], line.arrays["train_loss"]) if 0 <= t <= 1]
    barrier = line.metadata["statistics"]["train_loss_barrier"]
    assert abs(barrier - (max(inside) - 0.5 * sum(ends))) <= 1e-5 * max(1.0, abs(barrier)), barrier
    assert line.metadata["model"] == {"external": "gated-unit", "flops_per_sample": 200}

    # The raw plane: a + x (b - a) + y (c - a), rows y.
    plane = results.load(str(workdir / "run" / "results" / "plane.npz"))
    for j, y in enumerate(plane.arrays["y"]):
        for i, x in enumerate(plane.arrays["x"]):
            weights = combined({"a": 1 - float(x) - float(y), "b": float(x), "c": float(y)})
            expected, accuracy = score(weights, train_x, train_y)
            assert abs(plane.arrays["train_loss"][j, i] - expected) <= 1e-5 * max(1.0, abs(expected)), (x, y)
            assert abs(plane.arrays["train_acc"][j, i] - accuracy) <= 1.0 / len(train_y) + 1e-9

    # The orthonormal plane: a + x u + y v, u and v Gram-Schmidt of b - a and c - a over all parameters.
    ortho = results.load(str(workdir / "run" / "results" / "ortho.npz"))
    names = sorted(checkpoints["a"])
    flat = {n: torch.cat([checkpoints[n][k].double().flatten() for k in names]) for n in "abc"}
    u = flat["b"] - flat["a"]
    u = u / u.norm()
    v = flat["c"] - flat["a"]
    v = v - (v @ u) * u
    v = v / v.norm()
    for j, y in enumerate(ortho.arrays["y"]):
        for i, x in enumerate(ortho.arrays["x"]):
            point = flat["a"] + float(x) * u + float(y) * v
            weights, offset = {}, 0
            for k in names:
                size = checkpoints["a"][k].numel()
                weights[k] = point[offset:offset + size].reshape(checkpoints["a"][k].shape)
                offset += size
            expected, _ = score(weights, train_x, train_y)
            assert abs(ortho.arrays["train_loss"][j, i] - expected) <= 1e-5 * max(1.0, abs(expected)), (x, y)
    assert np.allclose(ortho.arrays["model_x"][:2], [0, (flat["b"] - flat["a"]).norm().item()], rtol=1e-6)

    around = results.load(str(workdir / "run" / "results" / "around.npz"))
    assert around.arrays["done"].all() and np.isfinite(around.arrays["train_loss"]).all()
    center, _ = score(combined({"a": 1.0}), train_x, train_y)
    assert abs(around.arrays["train_loss"][1, 1] - center) <= 1e-5 * max(1.0, abs(center))
    assert sorted(os.path.basename(p) for p in glob.glob(str(workdir / "run" / "results" / "*.npz"))) == \
        ["around.npz", "line.npz", "ortho.npz", "plane.npz"]
