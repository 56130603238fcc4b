"""The Python side against a real Basin run: reader, exports, directions, data, plots, PyTorch.

Two small models are trained and a study (a surface and an interpolation beyond the end points)
is run once for the module; each test checks one thing a user of the Python side relies on.
"""
import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from basin import points, results

RESULTS = ("surface/a.npz", "interpolate/a-b.npz")


@pytest.fixture(scope="module")
def study(basin, workdir):
    work = str(workdir)
    basin("example", "spirals", "-o", "spirals.yaml")
    basin("data", "spirals.yaml", "-o", "spirals-data")
    # The same samples as .npy files, split and normalized again by the spec.
    x = np.concatenate([np.load(f"{work}/spirals-data/train_x.npy"), np.load(f"{work}/spirals-data/test_x.npy")])
    y = np.concatenate([np.load(f"{work}/spirals-data/train_y.npy"), np.load(f"{work}/spirals-data/test_y.npy")])
    np.save(f"{work}/x.npy", (x * 2.5 + 0.5).astype(np.float32))
    np.save(f"{work}/y.npy", y)
    model = open(f"{work}/spirals.yaml").read().split("data:")[0]
    with open(f"{work}/study.yaml", "w") as f:
        f.write(model + """data:
  source: files
  train: {features: x.npy, labels: y.npy}
  test_fraction: 0.3
  seed: 11
train: {epochs: 4}
jobs:
  - surface: {checkpoint: a.safetensors, x: "-1:1:13", y: "-1:1:9", orthogonalize: true, seed: 3}
  - interpolate: {from: a.safetensors, to: b.safetensors, t: "-0.5:1.5:17"}
""")
    basin("train", "study.yaml", "-o", "a.safetensors", "--seed", "0")
    basin("train", "study.yaml", "-o", "b.safetensors", "--seed", "1")
    basin("run", "study.yaml", "--out", "run", "--workers", "0")
    return {name: os.path.join(work, "run", "results", name) for name in RESULTS}


DATA_SPEC = {"data": {"source": "files", "train": {"features": "x.npy", "labels": "y.npy"}, "test_fraction": 0.3,
                      "seed": 11}}


def read_safetensors(path):
    """A safetensors file's float32 tensors with numpy alone."""
    raw = open(path, "rb").read()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] != "F32":
            continue
        start, end = entry["data_offsets"]
        out[name] = np.frombuffer(raw[8 + size + start:8 + size + end], dtype="<f4").reshape(entry["shape"])
    return out


def test_directions_equal_basins_bit_for_bit(basin, workdir, study):
    basin("surface", "study.yaml", "-o", "s.npz", "--checkpoint", "a.safetensors", "--x=-1:1:2", "--y=-1:1:2",
          "--orthogonalize", "--direction-seed", "3", "--norm", "layer", "--save-directions", "d.safetensors",
          "--no-test")
    checkpoint = read_safetensors(f"{workdir}/a.safetensors")
    saved = read_safetensors(f"{workdir}/d.safetensors")
    names = [n[3:] for n in saved if n.startswith("d0.")]
    assert names
    drawn = points.directions([(n, checkpoint[n]) for n in names], 2, norm="layer", orthogonalize=True, seed=3)
    for i in range(2):
        ours = np.concatenate([saved[f"d{i}.{n}"].reshape(-1) for n in names])
        assert np.array_equal(ours.view(np.uint32), drawn[i].view(np.uint32)), f"direction {i} differs"


def test_data_split_and_normalization_equal_basins_bit_for_bit(basin, workdir, study):
    basin("data", "study.yaml", "-o", "study-data")
    ours = points.load_data(DATA_SPEC, str(workdir))
    theirs = [np.load(f"{workdir}/study-data/{n}.npy") for n in ("train_x", "train_y", "test_x", "test_y")]
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("name", RESULTS)
def test_reader_reads_what_csv_export_writes(basin, workdir, study, name):
    result = results.load(study[name])
    out = os.path.join(workdir, name.replace("/", "-") + ".csv")
    basin("export", study[name], "--to", "csv", "-o", out)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == int(np.prod(result.shape)) and result.complete
    for metric in results.METRICS:
        column = np.array([float(r[metric]) for r in rows], dtype=np.float32)
        assert np.array_equal(column, result[metric].reshape(-1).astype(np.float32), equal_nan=True), metric
    listed = list(result.points())
    assert len(listed) == len(rows)
    for (coordinates, _), row in zip(listed, rows):
        assert coordinates[0] == float(row["x" if "x" in row else "t"])


def test_reader_refuses_a_file_that_is_not_a_result(basin, workdir, study):
    with pytest.raises(ValueError, match="study.yaml: not a Basin result"):
        results.load(os.path.join(workdir, "study.yaml"))


@pytest.mark.parametrize("name", RESULTS)
def test_vtk_reader_opens_vtk_export(basin, workdir, study, name):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOLegacy import vtkRectilinearGridReader
    out = os.path.join(workdir, name.replace("/", "-") + ".vtk")
    basin("export", study[name], "--to", "vtk", "-o", out)
    reader = vtkRectilinearGridReader()
    reader.SetFileName(out)
    reader.ReadAllScalarsOn()
    reader.Update()
    grid = reader.GetOutput()
    data = grid.GetPointData()
    arrays = {data.GetArrayName(i): vtk_to_numpy(data.GetArray(i)) for i in range(data.GetNumberOfArrays())}
    result = results.load(study[name])
    shape = result.shape
    assert grid.GetDimensions() == ((shape[1], shape[0], 1) if len(shape) == 2 else (shape[0], 1, 1))
    for metric in results.METRICS:
        assert np.array_equal(arrays[metric].astype(np.float32), result[metric].reshape(-1), equal_nan=True), metric


def test_plot_draws_contours_a_3d_surface_and_a_path(basin, workdir, study):
    runs = [basin.script("basin-plot", study["surface/a.npz"], "-o", "contour.png", "--log"),
            basin.script("basin-plot", study["surface/a.npz"], "-o", "surface3d.png", "--3d"),
            basin.script("basin-plot", study["interpolate/a-b.npz"], "-o", "path.svg", "--metric", "test_acc")]
    for run in runs:
        assert run.returncode == 0, run.stderr
    for name in ("contour.png", "surface3d.png", "path.svg"):
        assert os.path.getsize(f"{workdir}/{name}") > 5000, name


def test_plot_refuses_a_file_that_is_not_a_result_in_one_line(basin, workdir, study):
    bad = basin.script("basin-plot", os.path.join(workdir, "study.yaml"), "-o", "bad.png")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "study.yaml" in bad.stderr, bad.stderr


@pytest.mark.parametrize("name", RESULTS)
def test_crosscheck_pytorch_agrees_with_basin(basin, workdir, study, name):
    run = basin.script("basin-crosscheck", study[name], "--samples", "6")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 of 6 points agree" in run.stdout


def test_torch_export_basin_scores_the_module_like_pytorch(basin, workdir, study):
    from basin import torch as bridge
    with open(f"{workdir}/seq.py", "w") as f:
        f.write("import torch\nfrom torch import nn\n"
                "def build():\n    torch.manual_seed(4)\n"
                "    return nn.Sequential(nn.Linear(2, 24), nn.BatchNorm1d(24), nn.GELU(), nn.Linear(24, 2))\n")
    exported = basin.script("basin-torch", "export", "seq.py:build", "--input", "2", "-o", "seq.safetensors")
    assert exported.returncode == 0, exported.stderr
    scored = json.loads(basin("eval", "seq.safetensors", "--spec", "study.yaml", "--json"))
    train_x, train_y, _, _ = points.load_data(DATA_SPEC, str(workdir))
    build = bridge.load_factory(f"{workdir}/seq.py:build")
    torch_loss, _ = bridge.evaluate(build(), train_x, train_y)
    assert abs(scored["trainLoss"] - torch_loss) <= 1e-5 * max(1, abs(torch_loss))


def test_worker_gives_up_on_a_coordinator_that_never_answers(basin, workdir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lonely = basin.script("basin-worker", "--connect", f"tcp://127.0.0.1:{port}", "--give-up-after", "1",
                          "--cache", f"{workdir}/cache", timeout=60)
    assert lonely.returncode == 1
    assert f"no coordinator answered at tcp://127.0.0.1:{port}" in lonely.stderr, lonely.stderr


def test_the_reader_needs_numpy_alone():
    """basin.results and basin.points import where torch, matplotlib, zmq and yaml cannot."""
    code = ("import sys\n"
            "for name in ('torch', 'matplotlib', 'zmq', 'yaml', 'safetensors'):\n"
            "    sys.modules[name] = None\n"
            "import basin, basin.results, basin.points\n"
            "print(basin.__version__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_digits_export_writes_what_the_digits_example_trains_on(basin, workdir):
    """scripts/digits-export (scikit-learn, from the environment's examples extra) writes the
    files `basin example digits` names, and Basin trains on them."""
    from conftest import ROOT
    done = basin.python(os.path.join(ROOT, "scripts", "digits-export"), "digits")
    assert done.returncode == 0, done.stderr
    features, labels = np.load(f"{workdir}/digits/features.npy"), np.load(f"{workdir}/digits/labels.npy")
    assert features.shape == (1797, 64) and features.dtype == np.float32 and labels.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(10))
    basin("example", "digits", "-o", "digits.yaml")
    metrics = json.loads(basin("train", "digits.yaml", "-o", "digits.safetensors", "--epochs", "1", "--json"))
    assert metrics["parameters"] > 0 and metrics["testAccuracy"] > 0.3, metrics
