"""Bridge between PyTorch nn.Sequential models and Basin model descriptions.

`to_sequential(description)` builds the nn.Sequential a Basin description names (so a Basin
checkpoint loads with `load_state_dict`); `describe(model, input_shape)` writes the Basin
description of an nn.Sequential built from the layers Basin supports (so
`safetensors.torch.save_file(model.state_dict(), path)` loads in Basin).
"""

import torch
from torch import nn


def _pair(value):
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def to_sequential(description):
    """nn.Sequential for a Basin description (dict with 'input' and 'layers', sizes resolved)."""
    layers = []
    for spec in description["layers"]:
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
        else:
            raise ValueError(f"layer type '{kind}' has no PyTorch counterpart here")
    return nn.Sequential(*layers)


def describe(model, input_shape):
    """Basin description (dict) of an nn.Sequential; raises ValueError naming an unsupported layer."""
    layers = []
    for index, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            layers.append({"type": "linear", "in_features": layer.in_features, "out_features": layer.out_features,
                           "bias": layer.bias is not None})
        elif isinstance(layer, nn.Conv2d):
            if layer.groups != 1 or tuple(layer.dilation) != (1, 1) or layer.padding_mode != "zeros" \
                    or isinstance(layer.padding, str):
                raise ValueError(f"layer {index}: Conv2d with groups, dilation, string padding or non-zero padding mode")
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
                raise ValueError(f"layer {index}: pooling with ceil_mode or dilation")
            if isinstance(layer, nn.AvgPool2d) and (not layer.count_include_pad or layer.divisor_override):
                raise ValueError(f"layer {index}: AvgPool2d without count_include_pad")
            layers.append({"type": "maxpool2d" if isinstance(layer, nn.MaxPool2d) else "avgpool2d",
                           "kernel_size": _pair(layer.kernel_size), "stride": _pair(layer.stride),
                           "padding": _pair(layer.padding)})
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise ValueError(f"layer {index}: Flatten must use start_dim=1, end_dim=-1")
            layers.append("flatten")
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not layer.affine or not layer.track_running_stats or layer.momentum is None:
                raise ValueError(f"layer {index}: BatchNorm must be affine, track running stats and have a momentum")
            layers.append({"type": "batchnorm1d" if isinstance(layer, nn.BatchNorm1d) else "batchnorm2d",
                           "num_features": layer.num_features, "eps": layer.eps, "momentum": layer.momentum})
        elif isinstance(layer, nn.Dropout):
            layers.append({"type": "dropout", "p": layer.p})
        else:
            raise ValueError(f"layer {index}: {type(layer).__name__} is not supported by Basin")
    return {"input": list(input_shape), "layers": layers}


def evaluate(model, features, labels, loss="cross_entropy"):
    """Mean loss and accuracy in eval mode, as Basin reports them (float32 model, float64 sums)."""
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(features))
        labels = torch.from_numpy(labels)
        if loss == "cross_entropy":
            per_sample = nn.functional.cross_entropy(out, labels, reduction="none")
        else:
            target = nn.functional.one_hot(labels, out.shape[1]).to(out.dtype)
            per_sample = ((out - target) ** 2).mean(dim=1)
        accuracy = (out.argmax(dim=1) == labels).double().mean().item()
        return per_sample.double().mean().item(), accuracy
