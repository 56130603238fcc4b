"""How the PyTorch worker evaluates a shard's points: on any device, many points per pass, and
the first layer once.

A `ShardEvaluator` takes a `basin.torch.PointJob` (the job's affine family: base vectors over the
parameters and BatchNorm statistics, one coefficient row per point) and keeps on its device, for
the whole job, the data, the base vectors (float64) and one flat float32 parameter buffer that
the model's parameters are views of, so a point's parameters are one combination and one copy
on the device, with no host round trip. Three ways to evaluate points:

- `plain`: one point at a time, the whole network per point (what the cross-check does).
- `reuse`: where the model's first operation is a Linear or Conv2d applied to the input (the
  first module of an nn.Sequential, or found by tracing the module with torch.fx), that layer's response to each base vector is computed once per data chunk and
  combined per point (it is linear in its weights and bias), as Basin's own fast evaluator does;
  only the layers after it run per point.
- `batched`: K points per pass, `torch.func.functional_call` under `torch.vmap` over stacked
  parameters: on a GPU a small model is bound by kernel launches, not arithmetic.

`strategy="auto"` measures them on a probe of the data and keeps the fastest (K = 1 where
batching loses, as it does on CPUs), so the worker is never slower than one point at a time.
With `bn: recompute` every point re-estimates its statistics in train mode, one point at a time.
"""
import copy
import math
import time

import numpy as np
import torch
from torch import nn

STRATEGIES = ("plain", "reuse", "batched")
PROBE_SECONDS = 0.02  # what one point of the probe should cost, so choosing stays a small part of a job
PROBE_SAMPLES = 256  # the fewest training samples a probe keeps
MARGIN = 1.1  # how much faster than the simpler way another must measure to be chosen
CPU_BATCHING_SECONDS = 0.01  # a CPU point costing more is bound by arithmetic: batching is not tried
CHOICES = {}  # signature -> choice, so a worker measures once per model and data, not per job


def choose_device(name=None):
    """The torch.device for --device (cpu, cuda, cuda:N, mps); default cuda where there is one."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device '{name}' is not cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"--device {name}: MPS is not available here")
    elif device.type != "cpu":
        raise ValueError(f"--device '{name}' is not cpu, cuda, cuda:N or mps")
    return device


def per_sample(out, target, loss):
    """Per-sample losses and correct predictions (None for regression), as Basin scores them."""
    if target.dtype.is_floating_point:
        return ((out - target.reshape(out.shape[-2:])) ** 2).mean(dim=-1), None
    if loss == "cross_entropy":
        losses = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.expand(out.shape[:-1]).reshape(-1),
                                             reduction="none").reshape(out.shape[:-1])
    else:
        one_hot = nn.functional.one_hot(target, out.shape[-1]).to(out.dtype)
        losses = ((out - one_hot) ** 2).mean(dim=-1)
    return losses, out.argmax(dim=-1) == target


class ShardEvaluator:
    """Evaluates points of one job (a basin.torch.PointJob) on a device: `evaluate(indices)` gives
    the four metrics of each point. `strategy` is plain, reuse, batched (with `points_per_pass`
    K) or auto (measured on the first call); `chunk` is the samples per forward pass."""

    def __init__(self, job, device=None, strategy="auto", points_per_pass=None, chunk=8192):
        if strategy not in ("auto",) + STRATEGIES:
            raise ValueError(f"unknown strategy '{strategy}' ({', '.join(('auto',) + STRATEGIES)})")
        self.job, self.device, self.chunk = job, device or torch.device("cpu"), chunk
        # Its own copy: the parameters become views of this evaluator's buffer.
        self.model = copy.deepcopy(job.model).to(self.device).eval()
        self.loss = job.loss
        to = dict(device=self.device)
        # Points are combined in float64 and rounded once, as Basin does; MPS has no float64.
        self.exact = torch.float32 if self.device.type == "mps" else torch.float64
        self.bases = torch.from_numpy(np.stack(job.bases)).to(dtype=self.exact, **to)
        self.states = torch.from_numpy(np.stack(job.states)).to(dtype=self.exact, **to)
        train_x, train_y, test_x, test_y = job.data
        self.splits = [(torch.as_tensor(np.ascontiguousarray(x)).to(**to), torch.as_tensor(np.ascontiguousarray(y)).to(**to))
                       for x, y in ((train_x, train_y), (test_x, test_y))]
        # The parameters and the floating-point buffers as views of two flat buffers.
        self.flat = torch.zeros(self.bases.shape[1], dtype=torch.float32, **to)
        self.flat_state = torch.zeros(self.states.shape[1], dtype=torch.float32, **to)
        params = dict(self.model.named_parameters())
        self.views, self.state_views = {}, {}
        for names, shapes, flat, views in ((job.names, job.shapes, self.flat, self.views),
                                           (job.buffers, job.buffer_shapes, self.flat_state, self.state_views)):
            offset = 0
            for name, shape in zip(names, shapes):
                size = int(np.prod(shape))
                views[name] = flat[offset:offset + size].view(shape)
                offset += size
        for name, view in self.views.items():
            params[name].data = view
        for name, view in self.state_views.items():
            module_name, _, attribute = name.rpartition(".")
            setattr(self.model.get_submodule(module_name) if module_name else self.model, attribute, view)
        self.first = self._first_layer()
        self.points_per_pass = points_per_pass
        self.strategy = None if strategy == "auto" else strategy
        if self.strategy is None and points_per_pass is not None and points_per_pass > 1:
            self.strategy = "batched"  # --points-per-pass K forces K points a pass
        if self.strategy == "reuse" and self.first is None:
            raise ValueError("the model's first operation is not a Linear or Conv2d on the input; no first layer to reuse")
        if job.bn == "recompute" and self.strategy not in (None, "plain"):
            raise ValueError("with bn: recompute each point re-estimates its statistics; only 'plain' applies")
        self.choice = None  # (strategy, K, measured points/s per candidate) once chosen
        self.unavailable = {}  # candidates that failed on this model, and why

    def _first_layer(self):
        """(module, weight name, bias name, rest) where the model's first operation is a Linear or
        Conv2d applied to its input, `rest` computing the model from that layer's output; None
        otherwise. Found from an nn.Sequential, else by tracing the module with torch.fx."""
        model = self.model
        if isinstance(model, nn.Sequential):
            if len(model) < 2:
                return None
            module, name, rest = model[0], "0", model[1:]
        else:
            try:
                module, name, rest = self._traced_first_layer(model)
            except Exception:  # noqa: BLE001 - a module fx cannot trace, or no first layer: no reuse
                return None
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            return None
        if isinstance(module, nn.Conv2d) and (module.padding_mode != "zeros" or isinstance(module.padding, str)):
            return None
        names = [n for n, _ in model.named_parameters()]
        weight, bias = f"{name}.weight", (f"{name}.bias" if module.bias is not None else None)
        if weight not in names or (bias is not None and bias not in names):
            return None
        return module, weight, bias, rest

    @staticmethod
    def _traced_first_layer(model):
        """The model traced with torch.fx, its single input feeding one Linear/Conv2d call and
        nothing else: that module, its name, and the graph with the module's output as its input."""
        traced = torch.fx.symbolic_trace(model)
        graph = traced.graph
        inputs = [n for n in graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1 or len(inputs[0].users) != 1:
            raise ValueError("not a single input used once")
        first = next(iter(inputs[0].users))
        if first.op != "call_module" or first.args != (inputs[0],) or first.kwargs:
            raise ValueError("the input does not go straight into a module")
        module = traced.get_submodule(first.target)
        with graph.inserting_before(first):
            response = graph.placeholder("response")
        first.replace_all_uses_with(response)
        graph.erase_node(first)
        graph.erase_node(inputs[0])
        traced.recompile()
        return module, first.target, traced

    # Setting a point

    def _rows(self, indices):
        return torch.tensor([self.job.coefficients(i) for i in indices], dtype=self.exact, device=self.device)

    def _set(self, row):
        self.flat.copy_((row @ self.bases).to(torch.float32))
        if self.flat_state.numel():
            self.flat_state.copy_((row @ self.states).to(torch.float32))

    # Strategies: each returns [points, 4] metrics

    def evaluate(self, indices):
        """(train loss, train accuracy, test loss, test accuracy) for each point index, as a list of lists."""
        indices = list(indices)
        if not indices:
            return []
        if self.job.bn == "recompute":
            return self._plain(indices, recompute=True)
        if self.strategy is None:
            signature = self._signature()
            known = CHOICES.get(signature)
            if known is not None:  # another job of the same model and data: measured already
                self.choice = dict(known, reused=True)
                self.strategy, self.points_per_pass = known["strategy"], known["points_per_pass"]
            else:
                self._choose(indices)
                CHOICES[signature] = self.choice
        if self.strategy == "reuse":
            return self._reuse(indices)
        if self.strategy == "batched" and self._k() > 1:
            return self._batched(indices, self._k())
        return self._plain(indices)

    def _k(self):
        return max(1, int(self.points_per_pass or 1))

    def _finish(self, totals, corrects, split):
        count = max(len(split[0]), 1)
        if not len(split[0]):
            return [[math.nan, math.nan] for _ in range(len(totals))]
        return [[float(t) / count, (float(c) / count) if c is not None else 0.0] for t, c in zip(totals, corrects)]

    def _score(self, out, target):
        losses, right = per_sample(out, target, self.loss)
        return losses.to(self.exact).sum(dim=-1), (right.sum(dim=-1) if right is not None else None)

    def _plain(self, indices, recompute=False):
        from .torch import recompute_batchnorm
        rows = self._rows(indices)
        results = []
        with torch.no_grad():
            for row in rows:
                self._set(row)
                if recompute:
                    recompute_batchnorm(self.model, self.splits[0][0], self.job.bn_batch, self.job.bn_weighting)
                self.model.eval()
                metrics = []
                for x, y in self.splits:
                    total = torch.zeros((), dtype=self.exact, device=self.device)
                    correct = torch.zeros((), dtype=torch.int64, device=self.device)
                    for first in range(0, len(x), self.chunk):
                        t, c = self._score(self.model(x[first:first + self.chunk]), y[first:first + self.chunk])
                        total += t
                        if c is not None:
                            correct += c
                    metrics += self._finish([total], [correct if not y.dtype.is_floating_point else None], (x, y))[0]
                results.append(metrics)
        return results

    def _reuse(self, indices):
        module, weight, bias, rest = self.first
        rows = self._rows(indices)
        thetas = (rows @ self.bases).to(torch.float32)  # [points, P]
        states = (rows @ self.states).to(torch.float32) if self.flat_state.numel() else None
        w_offset, w_size = self._span(weight)
        # Where the first module's parameters lead the flat vector (an nn.Sequential's do), a point
        # copies only the rest.
        prefix = module.weight.numel() + (module.bias.numel() if bias is not None else 0)
        leading = set(self.job.names[:2 if bias is not None else 1]) == {weight, bias} - {None}
        rest_start = prefix if leading else 0
        weights = self.bases[:, w_offset:w_offset + w_size].to(torch.float32).reshape(-1, *module.weight.shape)
        biases = None
        if bias is not None:
            b_offset, b_size = self._span(bias)
            biases = self.bases[:, b_offset:b_offset + b_size].to(torch.float32)
        coefficients = rows.tolist()
        results = [[] for _ in indices]
        with torch.no_grad():
            for x, y in self.splits:
                totals = torch.zeros(len(indices), dtype=self.exact, device=self.device)
                corrects = torch.zeros(len(indices), dtype=torch.int64, device=self.device)
                for first in range(0, len(x), self.chunk):
                    chunk, target = x[first:first + self.chunk], y[first:first + self.chunk]
                    # The first layer's response to each base vector, once per chunk.
                    responses = [self._apply(module, chunk, weights[b], None if biases is None else biases[b])
                                 for b in range(len(weights))]
                    h = torch.empty_like(responses[0])
                    for p in range(len(indices)):
                        self.flat[rest_start:].copy_(thetas[p, rest_start:])  # the layers after the first
                        if states is not None:
                            self.flat_state.copy_(states[p])
                        torch.mul(responses[0], coefficients[p][0], out=h)
                        for b in range(1, len(responses)):
                            h.add_(responses[b], alpha=coefficients[p][b])
                        t, c = self._score(rest(h), target)
                        totals[p] += t
                        if c is not None:
                            corrects[p] += c
                floating = y.dtype.is_floating_point
                for p, m in enumerate(self._finish(totals.tolist(), [None] * len(indices) if floating
                                                   else corrects.tolist(), (x, y))):
                    results[p] += m
        return results

    @staticmethod
    def _apply(module, x, weight, bias):
        if isinstance(module, nn.Linear):
            return nn.functional.linear(x, weight, bias)
        return nn.functional.conv2d(x, weight, bias, stride=module.stride, padding=module.padding,
                                    dilation=module.dilation, groups=module.groups)

    def _span(self, name):
        offset = 0
        for n, shape in zip(self.job.names, self.job.shapes):
            size = int(np.prod(shape))
            if n == name:
                return offset, size
            offset += size
        raise KeyError(name)

    def _batched(self, indices, k):
        from torch.func import functional_call, vmap
        model = self.model

        def forward(params, buffers, x):
            return functional_call(model, (params, buffers), (x,))

        batched = vmap(forward, in_dims=(0, 0, None))
        results = []
        with torch.no_grad():
            for start in range(0, len(indices), k):
                group = indices[start:start + k]
                rows = self._rows(group)
                thetas = (rows @ self.bases).to(torch.float32)
                params, buffers = self._stacked(thetas, self.job.names, self.job.shapes), {}
                if self.flat_state.numel():
                    buffers = self._stacked((rows @ self.states).to(torch.float32), self.job.buffers,
                                            self.job.buffer_shapes)
                group_results = [[] for _ in group]
                chunk = max(64, self.chunk // len(group))
                for x, y in self.splits:
                    totals = torch.zeros(len(group), dtype=self.exact, device=self.device)
                    corrects = torch.zeros(len(group), dtype=torch.int64, device=self.device)
                    for first in range(0, len(x), chunk):
                        t, c = self._score(batched(params, buffers, x[first:first + chunk]), y[first:first + chunk])
                        totals += t
                        if c is not None:
                            corrects += c
                    floating = y.dtype.is_floating_point
                    for p, m in enumerate(self._finish(totals.tolist(), [None] * len(group) if floating
                                                       else corrects.tolist(), (x, y))):
                        group_results[p] += m
                results += group_results
        return results

    @staticmethod
    def _stacked(flat, names, shapes):
        out, offset = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            out[name] = flat[:, offset:offset + size].reshape(len(flat), *shape)
            offset += size
        return out

    # Choosing

    def _candidates(self):
        out = [("plain", 1)]
        if self.first is not None:
            out.append(("reuse", 1))
        if self.points_per_pass is None:  # --points-per-pass 1 keeps one point a pass
            out += [("batched", k) for k in self._batch_sizes()]
        return out

    def _batch_sizes(self):
        """Points per pass worth trying: on a GPU as many as a quarter of its free memory holds
        (the activations of one chunk per point, measured), up to 256; on a CPU 8 and 32 where a
        point is bound by per-call costs (under CPU_BATCHING_SECONDS over all the data), none
        where it is bound by arithmetic, which batching does not reduce."""
        if self.device.type != "cuda":
            return [8, 32] if getattr(self, "point_seconds", 0.0) < CPU_BATCHING_SECONDS else []
        free, _ = torch.cuda.mem_get_info(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        with torch.no_grad():
            self.model(self.splits[0][0][:self.chunk])
        per_point = max(torch.cuda.max_memory_allocated(self.device) - before, 1) + 4 * self.flat.numel()
        most = int(max(1, min(256, free // 4 // per_point)))
        return sorted({k for k in (8, 32, most) if 1 < k <= most})

    def _signature(self):
        """What the choice depends on: the model, the data's shapes, the number of bases, the device."""
        return (type(self.model).__name__, tuple(self.job.names), self.flat.numel(), len(self.job.bases),
                tuple(tuple(x.shape) for x, _ in self.splits), str(self.device), self.points_per_pass)

    def _choose(self, indices):
        """Times each candidate on this shard's points (up to 16) over a probe of the training data
        sized so one point costs about PROBE_SECONDS, the best of two passes, and keeps the fastest.
        The points per call are the shard's, so a per-chunk cost (the first layer's responses) is
        shared as it will be."""
        saved_splits = self.splits
        shard = list(indices)[:16]
        rates = {}
        try:
            # Both splits cut by the same fraction, so per-call costs weigh as they will.
            def cut(fraction):
                self.splits = [(x[:math.ceil(len(x) * fraction)], y[:math.ceil(len(y) * fraction)])
                               for x, y in saved_splits]
            fraction = min(1.0, 4096 / max(len(saved_splits[0][0]), 1))
            cut(fraction)
            self.strategy = "plain"
            started = time.perf_counter()
            self.evaluate(shard[:1])
            seconds = time.perf_counter() - started
            self.point_seconds = seconds / fraction  # one point over all the data, estimated
            if seconds > PROBE_SECONDS:
                smallest = min(1.0, PROBE_SAMPLES / max(len(saved_splits[0][0]), 1))
                cut(max(smallest, fraction * PROBE_SECONDS / seconds))
            candidates = []
            for strategy, k in self._candidates():  # warm-up: vmap traces, allocator caches
                self.strategy, self.points_per_pass = strategy, k
                try:
                    self.evaluate(shard[:max(2, min(k, len(shard)))])
                    candidates.append((strategy, k))
                except (RuntimeError, NotImplementedError) as error:  # a module vmap cannot batch
                    if strategy == "plain":
                        raise
                    self.unavailable[f"{strategy}/{k}"] = str(error).splitlines()[0][:200] if str(error) else "failed"
            for _ in range(2):
                for strategy, k in candidates:
                    self.strategy, self.points_per_pass = strategy, k
                    started = time.perf_counter()
                    self.evaluate(shard)
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    rate = len(shard) / (time.perf_counter() - started)
                    rates[(strategy, k)] = max(rates.get((strategy, k), 0.0), rate)
        finally:
            self.splits = saved_splits
        # A probe is small: another way must beat one point at a time clearly to be trusted with
        # the whole job, and batching must beat the best way of one point at a time.
        plain = rates.get(("plain", 1), 0.0)
        single = max((item for item in rates.items() if item[0][1] == 1), key=lambda item: item[1])
        if single[0] != ("plain", 1) and single[1] < MARGIN * plain:
            single = (("plain", 1), plain)
        (self.strategy, self.points_per_pass), rate = max(rates.items(), key=lambda item: item[1])
        if (self.strategy, self.points_per_pass) != single[0] and rate < MARGIN * single[1]:
            (self.strategy, self.points_per_pass), rate = single
        self.choice = {"strategy": self.strategy, "points_per_pass": self.points_per_pass,
                       "rates": {f"{s}/{k}": round(r, 2) for (s, k), r in rates.items()},
                       "unavailable": self.unavailable}
