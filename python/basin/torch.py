"""Bridge between PyTorch nn.Sequential models and Basin model descriptions.

`to_sequential(description)` builds the nn.Sequential a Basin description names (so a Basin
checkpoint loads with `load_state_dict`); `describe(model, input_shape)` writes the Basin
description of an nn.Sequential built from the layers Basin supports (so
`safetensors.torch.save_file(model.state_dict(), path)` loads in Basin).
"""

import json
import math
import os
import sys

import numpy as np
import torch
from torch import nn

from . import points as basin_points


def _pair(value):
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


class Residual(nn.Module):
    """A Basin residual block: body(x) + shortcut(x), an empty shortcut being the identity. Its
    children are named `body` and `shortcut` (nn.Sequential), as Basin names the block's tensors."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if len(self.shortcut) else x)


def to_sequential(description):
    """nn.Sequential for a Basin description (dict with 'input' and 'layers', sizes resolved)."""
    return _layers(description["layers"])


def _layers(specs):
    layers = []
    for spec in specs:
        spec = {"type": spec} if isinstance(spec, str) else dict(spec)
        kind = spec.pop("type")
        if kind == "linear":
            layers.append(nn.Linear(spec["in_features"], spec["out_features"], bias=spec.get("bias", True)))
        elif kind == "conv2d":
            layers.append(nn.Conv2d(spec["in_channels"], spec["out_channels"], tuple(_pair(spec["kernel_size"])),
                                    stride=tuple(_pair(spec.get("stride", 1))),
                                    padding=tuple(_pair(spec.get("padding", 0))), bias=spec.get("bias", True)))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "leaky_relu":
            layers.append(nn.LeakyReLU(spec.get("negative_slope", 0.01)))
        elif kind == "tanh":
            layers.append(nn.Tanh())
        elif kind == "sigmoid":
            layers.append(nn.Sigmoid())
        elif kind == "gelu":
            layers.append(nn.GELU(approximate=spec.get("approximate", "none")))
        elif kind in ("maxpool2d", "avgpool2d"):
            cls = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
            kernel = tuple(_pair(spec["kernel_size"]))
            layers.append(cls(kernel, stride=tuple(_pair(spec.get("stride", kernel))),
                              padding=tuple(_pair(spec.get("padding", 0)))))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind in ("batchnorm1d", "batchnorm2d"):
            cls = nn.BatchNorm1d if kind == "batchnorm1d" else nn.BatchNorm2d
            layers.append(cls(spec["num_features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1)))
        elif kind == "dropout":
            layers.append(nn.Dropout(spec.get("p", 0.5)))
        elif kind == "identity":
            layers.append(nn.Identity())
        elif kind == "adaptive_avgpool2d":
            layers.append(nn.AdaptiveAvgPool2d(tuple(_pair(spec.get("output_size", 1)))))
        elif kind == "layernorm":
            layers.append(nn.LayerNorm(list(spec["normalized_shape"]), eps=spec.get("eps", 1e-5)))
        elif kind == "groupnorm":
            layers.append(nn.GroupNorm(spec["num_groups"], spec["num_channels"], eps=spec.get("eps", 1e-5)))
        elif kind == "residual":
            layers.append(Residual(_layers(spec["body"]), _layers(spec.get("shortcut", []))))
        else:
            raise ValueError(f"layer type '{kind}' has no PyTorch counterpart here")
    return nn.Sequential(*layers)


def describe(model, input_shape):
    """Basin description (dict) of an nn.Sequential (whose children may be `Residual` blocks);
    raises ValueError naming an unsupported layer."""
    return {"input": list(input_shape), "layers": _describe(model, input_shape, "layer ")}


def _describe(model, input_shape, where):
    layers = []
    shape = list(input_shape)
    for position, layer in enumerate(model):
        index = f"{where}{position}"
        if isinstance(layer, nn.Linear):
            layers.append({"type": "linear", "in_features": layer.in_features, "out_features": layer.out_features,
                           "bias": layer.bias is not None})
        elif isinstance(layer, nn.Conv2d):
            if layer.groups != 1 or tuple(layer.dilation) != (1, 1) or layer.padding_mode != "zeros" \
                    or isinstance(layer.padding, str):
                raise ValueError(f"{index}: Conv2d with groups, dilation, string padding or non-zero padding mode")
            layers.append({"type": "conv2d", "in_channels": layer.in_channels, "out_channels": layer.out_channels,
                           "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
                           "padding": list(layer.padding), "bias": layer.bias is not None})
        elif isinstance(layer, nn.ReLU):
            layers.append("relu")
        elif isinstance(layer, nn.LeakyReLU):
            layers.append({"type": "leaky_relu", "negative_slope": layer.negative_slope})
        elif isinstance(layer, nn.Tanh):
            layers.append("tanh")
        elif isinstance(layer, nn.Sigmoid):
            layers.append("sigmoid")
        elif isinstance(layer, nn.GELU):
            layers.append({"type": "gelu", "approximate": layer.approximate})
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            if getattr(layer, "ceil_mode", False) or getattr(layer, "dilation", 1) not in (1, (1, 1)):
                raise ValueError(f"{index}: pooling with ceil_mode or dilation")
            if isinstance(layer, nn.AvgPool2d) and (not layer.count_include_pad or layer.divisor_override):
                raise ValueError(f"{index}: AvgPool2d without count_include_pad")
            layers.append({"type": "maxpool2d" if isinstance(layer, nn.MaxPool2d) else "avgpool2d",
                           "kernel_size": _pair(layer.kernel_size), "stride": _pair(layer.stride),
                           "padding": _pair(layer.padding)})
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise ValueError(f"{index}: Flatten must use start_dim=1, end_dim=-1")
            layers.append("flatten")
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not layer.affine or not layer.track_running_stats or layer.momentum is None:
                raise ValueError(f"{index}: BatchNorm must be affine, track running stats and have a momentum")
            layers.append({"type": "batchnorm1d" if isinstance(layer, nn.BatchNorm1d) else "batchnorm2d",
                           "num_features": layer.num_features, "eps": layer.eps, "momentum": layer.momentum})
        elif isinstance(layer, nn.Dropout):
            layers.append({"type": "dropout", "p": layer.p})
        elif isinstance(layer, nn.Identity):
            layers.append("identity")
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            if _pair(layer.output_size) != [1, 1]:
                raise ValueError(f"{index}: AdaptiveAvgPool2d must have output_size 1")
            layers.append({"type": "adaptive_avgpool2d", "output_size": 1})
        elif isinstance(layer, nn.LayerNorm):
            if not layer.elementwise_affine or layer.bias is None or list(layer.normalized_shape) != shape:
                raise ValueError(f"{index}: LayerNorm must be affine with a bias and normalize the whole "
                                 f"sample {shape}")
            layers.append({"type": "layernorm", "normalized_shape": list(layer.normalized_shape), "eps": layer.eps})
        elif isinstance(layer, nn.GroupNorm):
            if not layer.affine:
                raise ValueError(f"{index}: GroupNorm must be affine")
            layers.append({"type": "groupnorm", "num_groups": layer.num_groups, "num_channels": layer.num_channels,
                           "eps": layer.eps})
        elif isinstance(layer, Residual):
            layers.append({"type": "residual", "body": _describe(layer.body, shape, f"{index} body "),
                           "shortcut": _describe(layer.shortcut, shape, f"{index} shortcut ")})
        else:
            raise ValueError(f"{index}: {type(layer).__name__} is not supported by Basin")
        shape = _output_shape(layer, shape)
    return layers


def _output_shape(layer, shape):
    """The shape of one sample after `layer` (run on zeros)."""
    with torch.no_grad():
        was = layer.training
        layer.eval()
        out = layer(torch.zeros([1] + list(shape)))
        layer.train(was)
    return list(out.shape[1:])


def evaluate(model, features, labels, loss="cross_entropy"):
    """Mean loss and accuracy in eval mode, as Basin reports them (float32 model, float64 sums)."""
    return evaluate_batched(model, features, labels, loss)


def load_factory(reference, option="--model"):
    """A user factory (of a model, or of data) from 'path/to/file.py:function' or 'package.module:function'."""
    import importlib
    import importlib.util
    location, _, name = reference.rpartition(":")
    if not location or not name:
        raise ValueError(f"{option} '{reference}': expected FILE.py:FUNCTION or MODULE:FUNCTION")
    if location.endswith(".py"):
        if not os.path.exists(location):
            raise ValueError(f"{option} '{reference}': no file {location}")
        spec = importlib.util.spec_from_file_location(f"basin_user_{option.strip('-').replace('-', '_')}", location)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"{option} '{reference}': {location} has no function '{name}'")
    return factory


def load_data_factory(reference):
    """(train_x, train_y, test_x, test_y) as numpy arrays from a user's data factory,
    'FILE.py:FUNCTION' or 'MODULE:FUNCTION', which returns the training data or a pair
    (train, test); each a torch.utils.data.Dataset of (features, label) items or a pair of
    tensors or arrays (features, labels). Labels are class indices (integers) or regression
    targets (floats), as in Basin's own data."""
    def arrays(split, which):
        if isinstance(split, torch.utils.data.Dataset):
            loader = torch.utils.data.DataLoader(split, batch_size=1024, shuffle=False)
            parts = list(loader)
            if not parts:
                return np.zeros((0, 1), np.float32), np.zeros(0, np.int64)
            features = torch.cat([torch.as_tensor(p[0]) for p in parts])
            labels = torch.cat([torch.as_tensor(p[1]).reshape(len(p[0]), -1).squeeze(1) for p in parts])
        elif isinstance(split, (tuple, list)) and len(split) == 2:
            features, labels = (torch.as_tensor(np.asarray(v)) if not torch.is_tensor(v) else v for v in split)
        else:
            raise ValueError(f"--data-factory '{reference}': the {which} data is a {type(split).__name__}, not a "
                             "Dataset or a (features, labels) pair")
        if len(features) != len(labels):
            raise ValueError(f"--data-factory '{reference}': {len(labels)} {which} labels for {len(features)} samples")
        labels = labels.long() if not labels.dtype.is_floating_point else labels.float()
        return features.float().numpy(), labels.numpy()

    made = load_factory(reference, option="--data-factory")()
    pair = isinstance(made, (tuple, list)) and len(made) == 2 and not torch.is_tensor(made[0]) \
        and not isinstance(made[0], np.ndarray)
    train, test = made if pair else (made, None)
    train_x, train_y = arrays(train, "training")
    test_x, test_y = arrays(test, "test") if test is not None else (train_x[:0], train_y[:0])
    return train_x, train_y, test_x, test_y


class PointJob:
    """A Basin grid job (surface, interpolate, plane, curve) evaluated point by point in PyTorch.

    `definition` and `spec` are the job and the study spec as Basin sends them (dicts), `base`
    the directory their relative paths start from. The model comes from `factory()` when given
    (a model Basin cannot build), otherwise from the Basin description in the checkpoint (or
    curve file). The job is an affine family as Basin's (LandscapeJob): base vectors over the
    parameters and over the BatchNorm statistics, and per point a row of coefficients; the
    directions, plane basis, curve weights, points and data are Basin's own (basin.points), so
    the parameters evaluated are the ones Basin's workers evaluate. BatchNorm is in eval mode
    with the family's statistics (`bn: eval`, the default except for curves) or re-estimated at
    each point (`bn: recompute`). `outputs` maps job names to files, for inputs written `@name`;
    `data_files` maps the spec's data paths to local copies."""

    def __init__(self, definition, spec, base, factory=None, data=None, outputs=None, data_files=None,
                 arrays=None):
        self.definition, self.spec = definition, spec
        self.kind = definition.get("kind")
        model = spec.get("model")
        external = model.get("external") if isinstance(model, dict) else None
        if external is not None and factory is None:
            raise ValueError(f"the spec's model '{str(external)[:80]}' is external: start this worker with "
                             "--model FILE.py:FUNCTION returning it")
        if basin_points.job_variant(definition) not in basin_points.KINDS:
            raise ValueError(f"the PyTorch worker evaluates {', '.join(basin_points.KINDS)} jobs, not '{self.kind}'")
        self.bn = definition.get("bn") or ("recompute" if self.kind == "curve" else "eval")
        if self.bn not in ("eval", "recompute"):
            raise ValueError(f"unknown BatchNorm mode '{self.bn}' (eval or recompute)")
        self.bn_batch, self.bn_weighting = recompute_settings(spec)
        self._outputs, self._data_files, self._base = outputs or {}, data_files or {}, base
        if self.kind == "curve":
            self._curve_family(factory)
        else:
            files = {"surface": [definition.get("checkpoint")], "interpolate": [definition.get("from"),
                                                                                 definition.get("to")],
                     "plane": list(definition.get("models") or [])}[self.kind]
            if not all(isinstance(f, str) for f in files) or not files:
                raise ValueError(f"the {self.kind} job names no input files")
            tensors = [self._tensors(f) for f in files]
            self.model = self._build(files[0], tensors[0], factory)
            self._layout()
            models = [self._vectors(f, t) for f, t in zip(files, tensors)]
            self.model.load_state_dict(tensors[0], strict=False)
            getattr(self, f"_{self.kind}_family")(models)
        # `arrays`: (train_x, train_y, test_x, test_y) from a user's data factory (load_data_factory).
        self.data = arrays if arrays is not None else basin_points.load_data(spec, base, data,
                                                                             locate=self._data_files)
        self.loss = ((spec.get("train") or {}).get("loss")) or "cross_entropy"

    # Inputs

    def _path(self, p):
        if p.startswith("@"):  # another job's output, fetched into the worker's cache
            if p[1:] not in self._outputs:
                raise ValueError(f"the output of job '{p[1:]}' did not come with the task")
            return self._outputs[p[1:]]
        if p in self._data_files:  # a file the spec names, fetched into the cache
            return self._data_files[p]
        return p if os.path.isabs(p) else os.path.join(self._base, p)

    def _tensors(self, file):
        from safetensors.torch import load_file
        try:
            return load_file(self._path(file))
        except (OSError, RuntimeError, ValueError) as error:
            raise ValueError(f"{file}: not a readable safetensors checkpoint ({str(error).splitlines()[0][:200]})")

    def _build(self, file, tensors, factory, metadata=None):
        if factory is not None:
            return factory()
        if metadata is None:
            from safetensors import safe_open
            with safe_open(self._path(file), "pt") as f:
                metadata = f.metadata() or {}
        text = metadata.get("basin.model")
        if text is None:
            raise ValueError(f"{file}: no Basin model description; pass --model FILE.py:FUNCTION")
        return to_sequential(json.loads(text))

    def _layout(self):
        self.names = [name for name, _ in self.model.named_parameters()]
        self.buffers = [name for name, b in self.model.named_buffers() if b.dtype.is_floating_point]
        self.shapes = [p.shape for _, p in self.model.named_parameters()]
        self.buffer_shapes = [b.shape for n, b in self.model.named_buffers() if n in self.buffers]

    def _vectors(self, file, tensors, prefix=""):
        """(parameters, statistics) of one model as flat float32 vectors, in the module's order."""
        missing = [n for n in self.names + self.buffers if prefix + n not in tensors]
        if missing:
            raise ValueError(f"{file}: no tensor '{prefix}{missing[0]}' for this model")
        for n, shape in zip(self.names + self.buffers, self.shapes + self.buffer_shapes):
            if tuple(tensors[prefix + n].shape) != tuple(shape):
                raise ValueError(f"{file}: tensor '{prefix}{n}' is shaped {list(tensors[prefix + n].shape)}, "
                                 f"the model needs {list(shape)}")
        params = np.concatenate([tensors[prefix + n].float().reshape(-1).numpy() for n in self.names])
        states = (np.concatenate([tensors[prefix + n].float().reshape(-1).numpy() for n in self.buffers])
                  if self.buffers else np.zeros(0, np.float32))
        return params, states

    # Families: self.bases / self.states (lists of flat vectors), self.count, self.row(index)

    def _surface_family(self, models):
        (center, state), = models
        d = self.definition
        count = 1 if d.get("line") else 2
        if d.get("trajectory"):
            directory = self._path(d["trajectory"])
            try:
                names = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors"))
            except OSError as error:
                raise ValueError(f"{directory}: cannot list the snapshot directory ({error.strerror})")
            snapshots = [self._vectors(os.path.join(d["trajectory"], n),
                                       self._tensors(os.path.join(directory, n)))[0] for n in names]
            directions = basin_points.trajectory_directions(snapshots, center, count)
        else:
            named = [(n, center[o:o + int(np.prod(s))].reshape(s))
                     for n, s, o in zip(self.names, self.shapes, self._offsets(self.shapes))]
            directions = basin_points.directions(
                named, count, norm=d.get("norm") or "filter", ignore=d.get("ignore") or "biasbn",
                orthogonalize=bool(d.get("orthogonalize")), seed=int(d.get("seed") or 0))
        self.bases = [center] + directions
        self.states = [state] + [np.zeros_like(state) for _ in directions]
        self.xs = basin_points.axis_values(d.get("x"))
        self.ys = None if d.get("line") else basin_points.axis_values(d.get("y"))
        self.count = len(self.xs) * (len(self.ys) if self.ys is not None else 1)

    def _path_family(self, models, kind, bends):
        self.bases = [p for p, _ in models]
        self.states = [s for _, s in models]
        self.curve = (kind, bends)
        self.ts = basin_points.axis_values(self.definition.get("t"), "0:1:21") + [0.0, 1.0]
        self.count = len(self.ts)

    def _interpolate_family(self, models):
        self._path_family(models, "polychain", 0)

    def _curve_family(self, factory):
        from safetensors import safe_open
        file = self.definition.get("file")
        if not isinstance(file, str):
            raise ValueError("the curve job names no curve file")
        with safe_open(self._path(file), "pt") as f:
            metadata = f.metadata() or {}
        kind, bends = metadata.get("basin.curve"), metadata.get("basin.bends", "")
        if kind not in ("bezier", "polychain") or not bends.isdigit() or int(bends) > 1000:
            raise ValueError(f"{file}: not a Basin curve file (no 'basin.curve' and 'basin.bends' metadata)")
        tensors = self._tensors(file)
        self.model = self._build(file, tensors, factory, metadata)
        self._layout()
        models = [self._vectors(file, tensors, prefix=f"p{j}.") for j in range(int(bends) + 2)]
        self._path_family(models, kind, int(bends))

    def _plane_family(self, models):
        if len(models) != 3:
            raise ValueError(f"a plane needs three checkpoints, not {len(models)}")
        d = self.definition
        (p0, s0), (p1, s1), (p2, s2) = models
        self.orthonormal = d.get("basis") == "orthonormal"
        if self.orthonormal:  # LandscapeJob.plane: Gram-Schmidt in float64, rounded once to float32
            u, v = p1 - p0, p2 - p0
            du, dv = (s1 - s0).astype(np.float64), (s2 - s0).astype(np.float64)
            dot = basin_points._sequential_dot
            u_norm = math.sqrt(dot(u, u))
            projection = dot(v, u) / (u_norm * u_norm)
            v = (v.astype(np.float64) - (dot(v, u) / max(dot(u, u), 2.2250738585072014e-308))
                 * u.astype(np.float64)).astype(np.float32)
            v_norm = math.sqrt(dot(v, v))
            self.bases = [p0, (u.astype(np.float64) / u_norm).astype(np.float32),
                          (v.astype(np.float64) / v_norm).astype(np.float32)]
            self.states = [s0, (du / u_norm).astype(np.float32), ((dv - projection * du) / v_norm).astype(np.float32)]
            coordinates = [(0.0, 0.0), (u_norm, 0.0), (projection * u_norm, v_norm)]
        else:
            self.bases, self.states = [p0, p1, p2], [s0, s1, s2]
            coordinates = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
        self.model_coordinates = coordinates
        self.xs = basin_points.axis_values(d.get("x") or basin_points.framing([c[0] for c in coordinates]))
        self.ys = basin_points.axis_values(d.get("y") or basin_points.framing([c[1] for c in coordinates]))
        self.count = len(self.xs) * len(self.ys)

    @staticmethod
    def _offsets(shapes):
        offsets, total = [], 0
        for s in shapes:
            offsets.append(total)
            total += int(np.prod(s))
        return offsets

    # Points

    def coordinates(self, index):
        """Point `index` as the result's axes name it: (x, y), (x,) for a line, or (t,)."""
        if not 0 <= index < self.count:
            raise ValueError(f"point {index} outside the job's {self.count}")
        if self.kind in ("interpolate", "curve"):
            return (self.ts[index],)
        x = self.xs[index % len(self.xs)]
        return (x,) if self.ys is None else (x, self.ys[index // len(self.xs)])

    def coefficients(self, index):
        """The coefficient row of point `index` over the family's bases (Basin's PointRows)."""
        point = self.coordinates(index)
        if self.kind in ("interpolate", "curve"):
            return basin_points.curve_coefficients(*self.curve, point[0])
        if self.kind == "plane" and not self.orthonormal:
            x, y = point
            return [1 - x - y, x, y]
        return [1.0, *point]

    def evaluate(self, index):
        """(train loss, train accuracy, test loss, test accuracy) at point `index`: one point at a
        time, the whole network per point, on the CPU (basin.evaluate's plain way)."""
        if getattr(self, "_reference", None) is None:
            from .evaluate import ShardEvaluator
            self._reference = ShardEvaluator(self, torch.device("cpu"), strategy="plain")
        return self._reference.evaluate([index])[0]


def recompute_settings(spec):
    """(batch size, weighting) of a spec's `bn_recompute` ({batch_size: 128, weighting: batch} by
    default), checked as Basin checks them."""
    settings = spec.get("bn_recompute") or {}
    if not isinstance(settings, dict):
        raise ValueError("bn_recompute must be a mapping {batch_size, weighting}")
    batch, weighting = settings.get("batch_size", 128), settings.get("weighting", "batch")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1_000_000:
        raise ValueError(f"bn_recompute.batch_size must be a batch size from 1 to 1000000, got {str(batch)[:40]}")
    if weighting not in ("batch", "samples"):
        raise ValueError(f"bn_recompute.weighting must be batch or samples, got {str(weighting)[:40]}")
    return batch, weighting


def recompute_batchnorm(model, features, batch=128, weighting="batch"):
    """Basin's `bn: recompute`: every BatchNorm's running statistics reset, then the batch
    statistics (unbiased variance) over `features` in order, in batches of `batch`, with Dropout
    off, averaged with every batch weighing the same (`weighting="batch"`, PyTorch's update_bn:
    batch k enters with momentum 1/(k+1)) or each weighing its size (`"samples"`, Garipov et
    al.'s update_bn: momentum b / (seen + b)). Returns the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: batch k enters with weight 1/k
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    with torch.no_grad():
        for first in range(0, len(features), batch):
            chunk = features[first:first + batch]  # a tensor on the model's device, or numpy
            if weighting == "samples":
                for m in norms:
                    m.momentum = len(chunk) / (first + len(chunk))
            model(chunk if torch.is_tensor(chunk) else torch.from_numpy(np.ascontiguousarray(chunk)))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def evaluate_batched(model, features, labels, loss="cross_entropy", batch=8192):
    """Mean loss and accuracy in eval mode over batches (float32 model, float64 sums), as Basin reports them."""
    from .evaluate import per_sample
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for first in range(0, len(features), batch):
            out = model(torch.from_numpy(np.ascontiguousarray(features[first:first + batch])))
            target = torch.from_numpy(np.ascontiguousarray(labels[first:first + batch]))
            losses, right = per_sample(out, target, loss)
            total += float(losses.double().sum())
            correct += int(right.sum()) if right is not None else 0
    count = max(len(features), 1)
    return total / count, correct / count


def export(model, input_shape, path):
    """Writes `model`'s state_dict as a Basin checkpoint: safetensors with the Basin description in
    the 'basin.model' metadata, so `basin eval`, `basin surface` and sweeps load it without a
    'model' section. Returns the description."""
    from safetensors.torch import save_file
    description = describe(model, input_shape)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, path, metadata={"basin.model": json.dumps(description, separators=(",", ":"))})
    return description


# Wrappers the published training scripts save their weights in: Li et al.'s loss-landscape
# ('state_dict'), Garipov et al.'s dnn-mode-connectivity ('model_state'), others ('model', 'net').
CHECKPOINT_WRAPPERS = ("state_dict", "model_state", "model", "net")


def unwrap(state):
    """The state_dict inside a torch.save'd checkpoint, with nn.DataParallel's 'module.' prefix removed."""
    for key in CHECKPOINT_WRAPPERS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError("not a state_dict (a mapping of names to tensors, or one under "
                         f"{', '.join(repr(k) for k in CHECKPOINT_WRAPPERS)})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def rename(state, description):
    """Basin's names for a foreign state_dict of the same architecture, matched by module order.

    The rename map: a model's tensors are taken in the order its modules register them
    (`state_dict` order) and given, one for one, the names Basin's module for `description`
    has in the same order; every shape must agree, and the counts. This is what maps
    - Li et al.'s CIFAR ResNets (loss-landscape, `cifar10/models/resnet.py`): `conv1`, `bn1`,
      `layer1.0.conv1`, `layer1.0.bn1`, `layer1.0.conv2`, `layer1.0.bn2`, `layer2.0.shortcut.0`,
      `layer2.0.shortcut.1`, ..., `linear` -> `0`, `1`, `3.body.0`, `3.body.1`, `3.body.3`,
      `3.body.4`, `9.shortcut.0`, `9.shortcut.1`, ..., the last linear layer;
    - torchvision-style ResNets: `conv1`, `bn1`, `layerK.J.conv1/bn1/conv2/bn2`,
      `layerK.J.downsample.0/1`, `fc`;
    - Garipov et al.'s VGG (`features.N`, `classifier.N`) and PreResNet (`conv1`,
      `layerK.J.bn1`, `conv1`, `bn2`, `conv2`, ..., `downsample.0`, `bn`, `fc`), whose blocks list
      BatchNorm before each convolution as Basin's pre-activation bodies do.
    A tensor whose shape differs from Basin's at the same place is an error naming both names.
    """
    target = to_sequential(description).state_dict()
    ours, theirs = list(target.items()), list(state.items())
    for i, ((name, tensor), (foreign, value)) in enumerate(zip(ours, theirs)):
        if tuple(value.shape) != tuple(tensor.shape):
            raise ValueError(f"tensor {i} '{foreign}' has shape {list(value.shape)} but Basin's '{name}' at that "
                             f"place needs {list(tensor.shape)}; is it the same architecture?")
    if len(ours) != len(theirs):
        extra = theirs[len(ours)][0] if len(theirs) > len(ours) else None
        missing = ours[len(theirs)][0] if len(ours) > len(theirs) else None
        raise ValueError(f"{len(theirs)} tensors where the Basin model has {len(ours)}"
                         + (f"; the first extra one is '{extra}'" if extra else f"; nothing for '{missing}'"))
    return {name: value.detach().to(tensor.dtype).contiguous() for (name, tensor), (_, value) in zip(ours, theirs)}


def import_checkpoint(path, description, output):
    """Writes a foreign PyTorch checkpoint (torch.save'd, or .safetensors in module order) as a
    Basin checkpoint of `description`."""
    from safetensors.torch import save_file
    if path.endswith(".safetensors"):
        raise ValueError("a .safetensors file does not keep module order; give the torch.save'd checkpoint")
    state = unwrap(torch.load(path, map_location="cpu", weights_only=True))
    tensors = rename(state, description)
    save_file(tensors, output, metadata={"basin.model": json.dumps(description, separators=(",", ":"))})


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(
        prog="basin-torch",
        description="Turn a PyTorch nn.Sequential and its state_dict into a Basin checkpoint (.safetensors with "
                    "the model description), or print a Basin checkpoint's description as an nn.Sequential.")
    commands = parser.add_subparsers(dest="command", required=True)
    to_basin = commands.add_parser("export", help="nn.Sequential (+ state_dict) -> Basin checkpoint")
    to_basin.add_argument("model", help="FILE.py:FUNCTION or MODULE:FUNCTION returning the nn.Sequential")
    to_basin.add_argument("--input", required=True, help="shape of one sample, e.g. 2 or 1,28,28")
    to_basin.add_argument("--state-dict", help="weights: a torch.save'd state_dict (.pt) or a .safetensors file")
    to_basin.add_argument("-o", "--output", required=True, help="Basin checkpoint to write (.safetensors)")
    show = commands.add_parser("show", help="print the nn.Sequential a Basin checkpoint describes")
    show.add_argument("checkpoint")
    imported = commands.add_parser(
        "import", help="a foreign checkpoint (Li et al., Garipov et al., torchvision) -> Basin checkpoint, "
                       "matched by module order (see rename())")
    imported.add_argument("checkpoint", help="torch.save'd state_dict or training checkpoint")
    imported.add_argument("--like", required=True,
                          help="a Basin checkpoint of the architecture (basin train SPEC --epochs 0 writes one)")
    imported.add_argument("-o", "--output", required=True, help="Basin checkpoint to write (.safetensors)")
    args = parser.parse_args(argv)
    try:
        if args.command == "import":
            from safetensors import safe_open
            with safe_open(args.like, "pt") as f:
                text = (f.metadata() or {}).get("basin.model")
            if text is None:
                raise ValueError(f"{args.like}: no 'basin.model' metadata (not written by Basin)")
            import_checkpoint(args.checkpoint, json.loads(text), args.output)
            print(f"wrote {args.output}", file=sys.stderr)
        elif args.command == "export":
            model = load_factory(args.model)()
            if not isinstance(model, nn.Sequential):
                raise ValueError(f"{args.model} returned a {type(model).__name__}; Basin describes nn.Sequential models "
                                 "(use basin-worker --model for others)")
            if args.state_dict:
                if args.state_dict.endswith(".safetensors"):
                    from safetensors.torch import load_file
                    state = load_file(args.state_dict)
                else:
                    state = torch.load(args.state_dict, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
            shape = [int(s) for s in args.input.split(",")]
            description = export(model, shape, args.output)
            print(json.dumps(description))
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            from safetensors import safe_open
            with safe_open(args.checkpoint, "pt") as f:
                text = (f.metadata() or {}).get("basin.model")
            if text is None:
                raise ValueError(f"{args.checkpoint}: no 'basin.model' metadata (not written by Basin)")
            print(to_sequential(json.loads(text)))
    except Exception as error:  # one sentence, no traceback: bad files and bad factories are user input
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        where = getattr(args, "checkpoint", None) or getattr(args, "state_dict", None) or args.model
        print(f"basin-torch: {message if where in message else f'{where}: {message}'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
