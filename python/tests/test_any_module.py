"""Models Basin cannot build, from a user's factory, on data from a user's data factory: a small
transformer and a residual network written as plain nn.Modules. The worker's ways of evaluating
(one point at a time, K points per pass under vmap, its own choice) agree with each other and
with the definition (the state_dicts combined by hand and evaluated by PyTorch)."""
import math
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from basin import evaluate
from basin import torch as bridge

MODELS = '''
import torch
from torch import nn


class Transformer(nn.Module):
    """Four tokens of eight features, one encoder layer, mean-pooled, three classes."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                                  batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.norm(self.encoder(x)).mean(dim=1))


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.blocks = nn.Sequential(Block(6), Block(6))
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.blocks(torch.relu(self.bn(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


def transformer():
    return Transformer()


def resnet():
    return ResNet()


def transformer_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, 8, generator=g)
    y = (x.sum(dim=(1, 2)) > 0).long() + (x[:, 0, 0] > 1).long()
    return torch.utils.data.TensorDataset(x[:150], y[:150]), (x[150:], y[150:])


def resnet_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(120, 3, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() * 2
    return torch.utils.data.TensorDataset(x, y)
'''


@pytest.fixture(scope="module")
def factories(workdir):
    path = os.path.join(workdir, "models.py")
    with open(path, "w") as f:
        f.write(MODELS)
    return path


def checkpoints(factories, workdir, name):
    build = bridge.load_factory(f"{factories}:{name}")
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = build()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.3, 0.3)
                    module.running_var.uniform_(0.5, 1.5)
        paths.append(os.path.join(workdir, f"{name}-{seed}.safetensors"))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, paths[-1])
    return build, paths


DEFINITIONS = {
    "surface": lambda p: {"kind": "surface", "checkpoint": p[0], "x": "-1:1:3", "y": "-0.5:0.5:2", "seed": 4},
    "interpolate": lambda p: {"kind": "interpolate", "from": p[0], "to": p[1], "t": "-0.5:1.5:5"},
    "plane": lambda p: {"kind": "plane", "models": p, "basis": "orthonormal", "x": "-1:1:2", "y": "-1:1:2"},
}


@pytest.mark.parametrize("model", ["transformer", "resnet"])
@pytest.mark.parametrize("kind", list(DEFINITIONS))
def test_every_way_of_evaluating_agrees_on_a_model_basin_cannot_build(factories, workdir, model, kind):
    build, paths = checkpoints(factories, workdir, model)
    arrays = bridge.load_data_factory(f"{factories}:{model}_data")
    job = bridge.PointJob(DEFINITIONS[kind](paths), {}, str(workdir), factory=build, arrays=arrays)
    reference = [job.evaluate(i) for i in range(job.count)]
    assert all(math.isfinite(r[0]) for r in reference), reference
    # The residual network's stem convolution takes the input (found by torch.fx): its response
    # is reused; the transformer's first operation is attention, so there is nothing to reuse.
    if model == "transformer":
        with pytest.raises(ValueError, match="no first layer to reuse"):
            evaluate.ShardEvaluator(job, torch.device("cpu"), strategy="reuse")
    for strategy, k in (("plain", 1), ("batched", 3), ("auto", None)) + ((("reuse", 1),) if model == "resnet" else ()):
        rows = evaluate.ShardEvaluator(job, torch.device("cpu"), strategy=strategy, points_per_pass=k,
                                       chunk=64).evaluate(range(job.count))
        for i, (want, have) in enumerate(zip(reference, rows)):
            for a, b in zip(want, have):
                assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-5 * max(1.0, abs(a)), \
                    f"{strategy} point {i}: {want} vs {have}"


def test_an_interpolated_point_is_the_combined_state_dicts(factories, workdir):
    """t = 1.5 on the line between two transformers is −0.5·A + 1.5·B of every tensor."""
    build, paths = checkpoints(factories, workdir, "transformer")
    arrays = bridge.load_data_factory(f"{factories}:transformer_data")
    job = bridge.PointJob(DEFINITIONS["interpolate"](paths), {}, str(workdir), factory=build, arrays=arrays)
    index = job.ts.index(1.5)
    from safetensors.torch import load_file
    a, b = load_file(paths[0]), load_file(paths[1])
    model = build()
    model.load_state_dict({k: (-0.5 * a[k].double() + 1.5 * b[k].double()).float() for k in a})
    loss, accuracy = bridge.evaluate(model, arrays[0], arrays[1])
    got = evaluate.ShardEvaluator(job, torch.device("cpu")).evaluate([index])[0]
    assert abs(got[0] - loss) <= 1e-5 * max(1.0, loss) and abs(got[1] - accuracy) <= 1e-9, (got, loss, accuracy)


def test_a_data_factory_that_returns_something_else_is_refused_naming_it(workdir):
    path = os.path.join(workdir, "bad_data.py")
    with open(path, "w") as f:
        f.write("def data():\n    return 42\n")
    with pytest.raises(ValueError, match="--data-factory .*bad_data.py:data.*is a int"):
        bridge.load_data_factory(f"{path}:data")


def test_gpu_evaluation_agrees_with_cpu(factories, workdir):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the GPU check needs one")
    build, paths = checkpoints(factories, workdir, "resnet")
    arrays = bridge.load_data_factory(f"{factories}:resnet_data")
    job = bridge.PointJob(DEFINITIONS["surface"](paths), {}, str(workdir), factory=build, arrays=arrays)
    cpu = evaluate.ShardEvaluator(job, torch.device("cpu"), strategy="plain").evaluate(range(job.count))
    gpu = evaluate.ShardEvaluator(job, torch.device("cuda")).evaluate(range(job.count))
    for want, have in zip(cpu, gpu):
        assert abs(want[0] - have[0]) <= 1e-4 * max(1.0, want[0]), (want, have)
