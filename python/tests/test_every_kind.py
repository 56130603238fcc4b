"""PyTorch evaluates every kind of grid job as Basin does: surfaces along random and trajectory
(PCA) directions, lines, interpolations, planes in both bases, Bezier and polychain curves, with
BatchNorm in eval mode and recomputed. A study runs in Basin; basin-crosscheck rebuilds each
result's points in PyTorch (basin.torch.PointJob) and compares them to 1e-5."""
import math
import os

import numpy as np
import pytest

from basin import points, results

SPEC = """model:
  input: [2]
  layers:
    - {type: linear, out_features: 24}
    - batchnorm1d
    - relu
    - {type: linear, out_features: 16}
    - tanh
    - {type: linear, out_features: 2}
data:
  source: spirals
  samples: 600
  noise: 0.05
  test_fraction: 0.25
  seed: 4
train: {optimizer: adam, lr: 0.01, epochs: 3, batch_size: 32, seed: 2}
"""

JOBS = """jobs:
  - surface: {checkpoint: a.safetensors, x: "-1:1:5", y: "-1:1:4", orthogonalize: true, seed: 3}
  - surface: {name: line, checkpoint: a.safetensors, x: "-0.5:0.5:6", line: true, norm: layer, bn: recompute}
  - surface: {name: pca, checkpoint: a.safetensors, trajectory: snapshots, x: "-1:1:4", y: "-1:1:3"}
  - interpolate: {from: a.safetensors, to: b.safetensors, t: "-0.25:1.25:7"}
  - interpolate: {name: line-bn, from: a.safetensors, to: b.safetensors, t: "0:1:5", bn: recompute}
  - plane: {models: [a.safetensors, b.safetensors, c.safetensors], x: "0:1:3", y: "0:1:3"}
  - plane: {name: orthonormal, models: [a.safetensors, b.safetensors, c.safetensors], basis: orthonormal}
  - curve: {file: bezier.safetensors, t: "-0.25:1.25:6"}
  - curve: {name: chain, file: chain.safetensors, t: "0:1:7", bn: eval}
"""

RESULTS = ["surface/a", "line", "pca", "interpolate/a-b", "line-bn", "plane/a-b-c", "orthonormal", "curve/bezier",
           "chain"]


@pytest.fixture(scope="module")
def study(basin, workdir):
    with open(f"{workdir}/model.yaml", "w") as f:
        f.write(SPEC)
    with open(f"{workdir}/study.yaml", "w") as f:
        f.write(SPEC + JOBS)
    basin("train", "model.yaml", "-o", "a.safetensors", "--seed", "0", "--snapshots", "snapshots")
    basin("train", "model.yaml", "-o", "b.safetensors", "--seed", "1")
    basin("train", "model.yaml", "-o", "c.safetensors", "--seed", "2")
    for kind, name in (("bezier", "bezier"), ("polychain", "chain")):
        basin("curve", "model.yaml", "a.safetensors", "b.safetensors", "-o", f"{name}.npz", "--kind", kind,
              "--bends", "1" if kind == "bezier" else "2", "--epochs", "1", "--points", "3",
              "--save-curve", f"{name}.safetensors")
    basin("data", "model.yaml", "-o", "data")
    basin("run", "study.yaml", "--out", "run", "--workers", "0")
    return os.path.join(workdir, "run", "results")


def result_path(study, name):
    """Where a run keeps a job's result: results/KIND/STEM.npz, or results/NAME.npz for a named job."""
    path = os.path.join(study, name + ".npz")
    assert os.path.exists(path), f"no result {name} under {study}: {sorted(os.listdir(study))}"
    return path


@pytest.mark.parametrize("name", RESULTS)
def test_pytorch_agrees_with_basin_on_every_point(basin, workdir, study, name):
    path = result_path(study, name)
    total = int(np.prod(results.load(path).shape))
    check = basin.script("basin-crosscheck", path, "--data", f"{workdir}/data", "--samples", str(total),
                         "--tolerance", "1e-5")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert f"{total} of {total} points agree" in check.stdout, check.stdout[-2000:]


def test_variants_are_named_as_the_coordinator_matches_them():
    assert points.job_variant({"kind": "surface", "trajectory": "snapshots"}) == "surface:trajectory"
    assert points.job_variant({"kind": "surface"}) == "surface:random"
    assert points.job_variant({"kind": "plane", "basis": "orthonormal"}) == "plane:orthonormal"
    assert points.job_variant({"kind": "plane"}) == "plane:raw"
    assert points.job_variant({"kind": "curve"}) == "curve"
    assert set(points.KINDS) >= {"surface:random", "surface:trajectory", "interpolate", "plane:raw",
                                 "plane:orthonormal", "curve"}


@pytest.mark.parametrize("kind, t, expected", [
    ("bezier", 0.0, [1.0, 0.0, 0.0]), ("bezier", 1.0, [0.0, 0.0, 1.0]), ("bezier", 0.5, [0.25, 0.5, 0.25]),
    ("polychain", 0.25, [0.5, 0.5, 0.0]), ("polychain", -0.5, [2.0, -1.0, 0.0]), ("polychain", 1.5, [0.0, -1.0, 2.0]),
])
def test_curve_weights_are_basins(kind, t, expected):
    assert points.curve_coefficients(kind, 1, t) == pytest.approx(expected, abs=1e-15)


def basin_values(result):
    return np.stack([np.asarray(result[m], dtype=np.float64).reshape(-1) for m in results.METRICS], axis=1)


def agree(basin_rows, torch_rows, data, tolerance=1e-5):
    """Every metric within tolerance (relative, floor 1); an accuracy may also differ by one sample
    whose two best logits tie to float32 rounding; NaN where both are NaN."""
    counts = [len(data[0])] * 2 + [len(data[2])] * 2
    for i, (want, have) in enumerate(zip(basin_rows, torch_rows)):
        for m, (a, b) in enumerate(zip(want, have)):
            if math.isnan(a) and math.isnan(b):
                continue
            limit = tolerance + (1.0 / max(counts[m], 1) if m % 2 else 0.0)
            assert abs(a - b) / max(abs(a), 1.0) <= limit, f"point {i} {results.METRICS[m]}: basin {a}, torch {b}"


@pytest.mark.parametrize("strategy, k", [("plain", 1), ("reuse", 1), ("batched", 3), ("auto", None)])
@pytest.mark.parametrize("name", RESULTS)
def test_every_way_the_worker_evaluates_agrees_with_basin(basin, workdir, study, name, strategy, k):
    import torch
    from basin import crosscheck, evaluate
    from basin import torch as bridge
    path = result_path(study, name)
    result = results.load(path)
    definition = crosscheck.definition_of(result)
    spec, base = crosscheck.spec_and_base(path, None, None)
    job = bridge.PointJob(definition, spec, base, data=f"{workdir}/data", outputs=crosscheck.run_outputs(path))
    if job.bn == "recompute" and strategy not in ("plain", "auto"):
        with pytest.raises(ValueError, match="only 'plain' applies"):
            evaluate.ShardEvaluator(job, torch.device("cpu"), strategy=strategy, points_per_pass=k)
        return
    evaluator = evaluate.ShardEvaluator(job, torch.device("cpu"), strategy=strategy, points_per_pass=k, chunk=128)
    rows = evaluator.evaluate(range(job.count))
    assert len(rows) == job.count == len(basin_values(result)) + (2 if job.kind in ("interpolate", "curve") else 0)
    agree(basin_values(result), rows, job.data)
    if strategy == "auto" and job.bn != "recompute":
        assert evaluator.choice["strategy"] in ("plain", "reuse", "batched"), evaluator.choice
