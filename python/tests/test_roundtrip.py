"""PyTorch round trips: Basin checkpoints evaluated in PyTorch, PyTorch state_dicts in Basin.

For each model Basin trains it briefly and evaluates it; PyTorch loads the checkpoint into the
same module (basin.torch.to_sequential) and evaluates it on the same data (exported by
`basin data`), and the two agree to 1e-5 relative. Then the reverse: a PyTorch model (its own
initialization, BatchNorm statistics moved) saved with safetensors is evaluated by Basin. Then
a checkpoint of Li et al.'s ResNet definition imported through the rename map, and ResNet-20 from
`basin example resnet20`: its checkpoint both ways, and surface points with BatchNorm in eval mode
and recomputed re-evaluated in PyTorch by basin-crosscheck to 1e-5.
"""
import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from basin import torch as bridge
from conftest import close

torch.set_num_threads(1)

CASES = {
    "mlp": ("[2]", """
    - {type: linear, out_features: 32}
    - relu
    - {type: linear, out_features: 32}
    - tanh
    - {type: linear, out_features: 2}""", "source: spirals\n  samples: 600"),
    "mlp-bn-gelu": ("[10]", """
    - {type: linear, out_features: 24}
    - {type: batchnorm1d}
    - gelu
    - {type: dropout, p: 0.2}
    - {type: linear, out_features: 16, bias: false}
    - {type: leaky_relu, negative_slope: 0.05}
    - {type: linear, out_features: 16}
    - sigmoid
    - {type: gelu, approximate: tanh}
    - {type: linear, out_features: 4}""", "source: teacher\n  samples: 800\n  features: 10\n  classes: 4"),
    "cnn": ("[1, 8, 8]", """
    - {type: conv2d, out_channels: 6, kernel_size: 3, padding: 1}
    - {type: batchnorm2d}
    - relu
    - {type: maxpool2d, kernel_size: 3, stride: 2, padding: 1}
    - {type: conv2d, out_channels: 5, kernel_size: [2, 3], stride: [1, 2], padding: [1, 0]}
    - relu
    - {type: avgpool2d, kernel_size: 2, stride: 1, padding: 1}
    - flatten
    - {type: dropout, p: 0.1}
    - {type: linear, out_features: 3}""",
            "source: blobs\n  samples: 600\n  features: 64\n  classes: 3\n  spread: 0.4\n  shape: [1, 8, 8]"),
    # A small ResNet: a basic block with the identity shortcut, one that downsamples through a
    # strided 1x1 projection, a pre-activation block with GroupNorm, LayerNorm, global pooling.
    "resnet": ("[3, 8, 8]", """
    - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
    - {type: batchnorm2d}
    - relu
    - type: residual
      body:
        - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
        - {type: batchnorm2d}
        - relu
        - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
        - {type: batchnorm2d}
    - relu
    - type: residual
      body:
        - {type: conv2d, out_channels: 12, kernel_size: 3, stride: 2, padding: 1, bias: false}
        - {type: batchnorm2d}
        - relu
        - {type: conv2d, out_channels: 12, kernel_size: 3, padding: 1, bias: false}
        - {type: batchnorm2d}
      shortcut:
        - {type: conv2d, out_channels: 12, kernel_size: 1, stride: 2, bias: false}
        - {type: batchnorm2d}
    - relu
    - type: residual
      body:
        - {type: groupnorm, num_groups: 4}
        - relu
        - {type: conv2d, out_channels: 12, kernel_size: 3, padding: 1}
        - identity
    - layernorm
    - {type: adaptive_avgpool2d, output_size: 1}
    - flatten
    - {type: linear, out_features: 3}""",
               "source: blobs\n  samples: 400\n  features: 192\n  classes: 3\n  spread: 0.4\n  shape: [3, 8, 8]"),
}


class LiBlock(torch.nn.Module):
    """Li et al.'s CIFAR BasicBlock (loss-landscape, cifar10/models/resnet.py), names as theirs."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = torch.nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.shortcut = torch.nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = torch.nn.Sequential(torch.nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                                torch.nn.BatchNorm2d(planes))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class LiResNet(torch.nn.Module):
    """Li et al.'s CIFAR ResNet with one block per stage (global average pooling for small images)."""

    def __init__(self, classes=3):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.layer1 = torch.nn.Sequential(LiBlock(8, 8))
        self.layer2 = torch.nn.Sequential(LiBlock(8, 12, 2))
        self.layer3 = torch.nn.Sequential(LiBlock(12, 16, 2))
        self.linear = torch.nn.Linear(16, classes)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(out, 1), 1))


LI_SPEC = """model:
  input: [3, 8, 8]
  layers:
    - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
    - batchnorm2d
    - relu
""" + "".join(f"""    - type: residual
      body:
        - {{type: conv2d, out_channels: {c}, kernel_size: 3, stride: {st}, padding: 1, bias: false}}
        - batchnorm2d
        - relu
        - {{type: conv2d, out_channels: {c}, kernel_size: 3, padding: 1, bias: false}}
        - batchnorm2d
""" + (f"""      shortcut:
        - {{type: conv2d, out_channels: {c}, kernel_size: 1, stride: {st}, bias: false}}
        - batchnorm2d
""" if st != 1 else "") + "    - relu\n" for c, st in [(8, 1), (12, 2), (16, 2)]) + """    - {type: adaptive_avgpool2d, output_size: 1}
    - flatten
    - {type: linear, out_features: 3}
data:
  source: blobs
  samples: 300
  features: 192
  classes: 3
  spread: 0.4
  shape: [3, 8, 8]
  seed: 3
"""


def description_of(checkpoint):
    with safe_open(checkpoint, "pt") as f:
        return json.loads(f.metadata()["basin.model"])


PREPARED = {}


def prepared(basin, workdir, name):
    """Spec, data and a briefly trained checkpoint of CASES[name], made once for the module."""
    if name not in PREPARED:
        shape, layers, data = CASES[name]
        spec = os.path.join(workdir, f"{name}.yaml")
        with open(spec, "w") as f:
            f.write(f"model:\n  input: {shape}\n  layers:{layers}\n"
                    f"data:\n  {data}\n  seed: 3\n"
                    "train:\n  optimizer: adam\n  lr: 0.01\n  epochs: 3\n  batch_size: 32\n  seed: 5\n")
        data_dir = os.path.join(workdir, f"{name}-data")
        basin("data", spec, "-o", data_dir)
        arrays = {k: np.load(os.path.join(data_dir, f"{k}.npy")) for k in ("train_x", "train_y", "test_x", "test_y")}
        checkpoint = os.path.join(workdir, f"{name}.safetensors")
        basin("train", spec, "-o", checkpoint)
        PREPARED[name] = spec, arrays, checkpoint
    return PREPARED[name]


@pytest.mark.parametrize("name", list(CASES))
def test_basin_checkpoint_evaluates_alike_in_pytorch(basin, workdir, name):
    spec, arrays, checkpoint = prepared(basin, workdir, name)
    ours = json.loads(basin("eval", checkpoint, "--spec", spec, "--json"))
    model = bridge.to_sequential(description_of(checkpoint))
    model.load_state_dict(load_file(checkpoint), strict=True)
    train = bridge.evaluate(model, arrays["train_x"], arrays["train_y"])
    test = bridge.evaluate(model, arrays["test_x"], arrays["test_y"])
    assert close(train[0], ours["trainLoss"]), (train, ours)
    assert close(test[0], ours["testLoss"]), (test, ours)
    assert close(train[1], ours["trainAccuracy"]) and close(test[1], ours["testAccuracy"]), (train, test, ours)


@pytest.mark.parametrize("name", list(CASES))
def test_pytorch_state_dict_evaluates_alike_in_basin(basin, workdir, name):
    spec, arrays, checkpoint = prepared(basin, workdir, name)
    description = description_of(checkpoint)
    torch.manual_seed(11)
    reference = bridge.to_sequential(description)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(42)
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    torch_checkpoint = os.path.join(workdir, f"{name}-torch.safetensors")
    save_file(reference.state_dict(), torch_checkpoint)
    described = os.path.join(workdir, f"{name}-model.json")
    with open(described, "w") as f:
        json.dump(bridge.describe(reference, description["input"]), f)
    ours = json.loads(basin("eval", torch_checkpoint, "--spec", spec, "--model", described, "--json"))
    train = bridge.evaluate(reference, arrays["train_x"], arrays["train_y"])
    test = bridge.evaluate(reference, arrays["test_x"], arrays["test_y"])
    assert close(train[0], ours["trainLoss"]) and close(test[0], ours["testLoss"]), (train, test, ours)
    assert close(train[1], ours["trainAccuracy"]), (train, ours)


@pytest.fixture(scope="module")
def li(basin, workdir):
    """Li et al.'s ResNet in PyTorch (BatchNorm moved off its initial values), saved as their training
    script saves it, and a Basin checkpoint of the same architecture to import it like."""
    spec = os.path.join(workdir, "li.yaml")
    with open(spec, "w") as f:
        f.write(LI_SPEC)
    like = os.path.join(workdir, "li-like.safetensors")
    basin("train", spec, "-o", like, "--epochs", "0")
    data_dir = os.path.join(workdir, "li-data")
    basin("data", spec, "-o", data_dir)
    torch.manual_seed(5)
    reference = LiResNet()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    saved = os.path.join(workdir, "li.t7")
    torch.save({"state_dict": reference.state_dict(), "epoch": 300}, saved)
    return spec, data_dir, reference, saved, description_of(like)


def test_li_resnet_checkpoint_imports_through_the_rename_map(basin, workdir, li):
    spec, data_dir, reference, saved, description = li
    imported = os.path.join(workdir, "li-imported.safetensors")
    bridge.import_checkpoint(saved, description, imported)
    ours = json.loads(basin("eval", imported, "--spec", spec, "--json"))
    x, y = np.load(os.path.join(data_dir, "train_x.npy")), np.load(os.path.join(data_dir, "train_y.npy"))
    loss, accuracy = bridge.evaluate(reference, x, y)
    assert close(loss, ours["trainLoss"]) and close(accuracy, ours["trainAccuracy"]), (loss, accuracy, ours)


def test_import_refuses_another_architecture_naming_the_tensor(basin, workdir, li):
    _, _, _, _, description = li
    wrong = os.path.join(workdir, "li-wrong.t7")
    torch.save(LiResNet(classes=5).state_dict(), wrong)
    with pytest.raises(ValueError, match="linear.weight"):
        bridge.import_checkpoint(wrong, description, os.path.join(workdir, "x.safetensors"))


@pytest.fixture(scope="module")
def resnet20(basin, workdir):
    """ResNet-20 as `basin example resnet20` writes it, on fewer CIFAR-shaped images, trained one epoch."""
    example = os.path.join(workdir, "resnet20-example.yaml")
    basin("example", "resnet20", "-o", example)
    with open(example) as f:
        text = f.read().split("\nstages:")[0]
    for old, new in (("samples: 1200", "samples: 300"), ("epochs: 4", "epochs: 1")):
        assert old in text, f"the example no longer says '{old}'"
        text = text.replace(old, new)
    spec = os.path.join(workdir, "resnet20.yaml")
    with open(spec, "w") as f:
        f.write(text)
    checkpoint = os.path.join(workdir, "resnet20.safetensors")
    basin("train", spec, "-o", checkpoint)
    data_dir = os.path.join(workdir, "resnet20-data")
    basin("data", spec, "-o", data_dir)
    return spec, checkpoint, data_dir


def test_resnet20_checkpoint_both_ways(basin, workdir, resnet20):
    spec, checkpoint, data_dir = resnet20
    x, y = np.load(os.path.join(data_dir, "train_x.npy")), np.load(os.path.join(data_dir, "train_y.npy"))
    description = description_of(checkpoint)
    model = bridge.to_sequential(description)
    model.load_state_dict(load_file(checkpoint), strict=True)
    ours = json.loads(basin("eval", checkpoint, "--spec", spec, "--json"))
    loss, accuracy = bridge.evaluate(model, x, y)
    assert close(loss, ours["trainLoss"]) and close(accuracy, ours["trainAccuracy"]), (loss, accuracy, ours)
    # PyTorch's state_dict of the loaded model, described from the module: Basin gives the same loss.
    back, described = os.path.join(workdir, "resnet20-torch.safetensors"), os.path.join(workdir, "resnet20-model.json")
    save_file(model.state_dict(), back)
    with open(described, "w") as f:
        json.dump(bridge.describe(model, description["input"]), f)
    again = json.loads(basin("eval", back, "--spec", spec, "--model", described, "--json"))
    assert again["trainLoss"] == ours["trainLoss"]


@pytest.mark.parametrize("bn", ["eval", "recompute"])
def test_resnet20_surface_points_agree_with_pytorch(basin, workdir, resnet20, bn):
    spec, checkpoint, data_dir = resnet20
    result = os.path.join(workdir, f"resnet20-surface-{bn}.npz")
    basin("surface", spec, "--checkpoint", checkpoint, "-o", result, "--x", "-0.5:0.5:3", "--y", "-0.5:0.5:2",
          "--bn", bn)
    check = basin.script("basin-crosscheck", result, "--spec", spec, "--base", workdir, "--data", data_dir,
                         "--samples", "3", "--tolerance", "1e-5")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 of 3 points agree" in check.stdout
