"""Basin's point definitions in numpy: Philox4x32-10 streams, Li et al. directions, axes and data.

Everything here reproduces what Basin's Swift code computes, so a Python program (the PyTorch
worker, the cross-check) evaluates the same parameter vectors Basin does:

- `RandomSource(seed, stream)`: Basin's Philox stream (word n is word n % 4 of the block at
  counter (n / 4, stream)); `gaussians` draws Box-Muller pairs one block per pair.
- `directions(named, count, ...)`: `Directions.random` bit for bit (random Gaussian tensors,
  filter/layer normalization against the weights, bias/BN rule, optional orthogonalization).
- `axis_values("MIN:MAX:STEPS")`, `framing`, `curve_coefficients`: the
  grids of surface, interpolation, plane and curve jobs, in Basin's point order, and the weights
  of a curve's control points.
- `load_data(spec, base)`: a spec's `files` data (.npy), split and normalized like Basin; other
  sources are read from a directory written by `basin data SPEC -o DIR`.

numpy is the only dependency.
"""

import math
import os

import numpy as np

MASK32 = 0xFFFFFFFF
STREAM_SPLIT = 5
STREAM_DIRECTION = 6


def stream_id(kind, index=0):
    return (kind << 40) | (index & ((1 << 64) - 1))


def philox_blocks(seed, stream, counters):
    """Philox4x32-10 blocks for `counters` (uint64 array) of `stream` under key `seed`: 4 uint32 arrays."""
    counters = np.asarray(counters, dtype=np.uint64)
    x0 = counters & np.uint64(MASK32)
    x1 = counters >> np.uint64(32)
    x2 = np.full_like(x0, stream & MASK32)
    x3 = np.full_like(x0, (stream >> 32) & MASK32)
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    m0, m1, mask = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57), np.uint64(MASK32)
    for _ in range(10):
        p0 = m0 * x0
        p1 = m1 * x2
        x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ np.uint64(k0), p1 & mask,
                          (p0 >> np.uint64(32)) ^ x3 ^ np.uint64(k1), p0 & mask)
        k0 = (k0 + 0x9E3779B9) & MASK32
        k1 = (k1 + 0xBB67AE85) & MASK32
    return x0, x1, x2, x3


def _unit(hi, lo):
    """Basin's nextDouble from two words (hi first): 53 bits in [0, 1)."""
    return ((hi << np.uint64(32)) | lo) >> np.uint64(11)


def gaussians(seed, stream, count):
    """The first `count` values of RandomSource.nextGaussian on one stream (float64)."""
    pairs = (count + 1) // 2
    w0, w1, w2, w3 = philox_blocks(seed, stream, np.arange(pairs, dtype=np.uint64))
    u1 = [1.0 - float(v) * 2.0 ** -53 for v in _unit(w0, w1).tolist()]
    u2 = [float(v) * 2.0 ** -53 for v in _unit(w2, w3).tolist()]
    out = np.empty(2 * pairs)
    # math (the C library) rather than numpy's vectorized kernels, which may round differently.
    for k in range(pairs):
        radius = math.sqrt(-2.0 * math.log(u1[k]))
        angle = 2.0 * math.pi * u2[k]
        out[2 * k] = radius * math.cos(angle)
        out[2 * k + 1] = radius * math.sin(angle)
    return out[:count]


class RandomSource:
    """A sequential reader over one Philox stream, like Basin's RandomSource (words and integers)."""

    def __init__(self, seed, stream):
        self.seed, self.stream, self.counter, self.words = seed, stream, 0, []

    def next_u32(self):
        if not self.words:
            blocks = philox_blocks(self.seed, self.stream, np.arange(self.counter, self.counter + 256, dtype=np.uint64))
            self.words = list(np.stack(blocks, axis=1).reshape(-1).tolist())[::-1]
            self.counter += 256
        return self.words.pop()

    def next_u64(self):
        hi = self.next_u32()
        return (hi << 32) | self.next_u32()

    def next_int_below(self, bound):
        """Lemire's unbiased method with rejection, as Basin draws it."""
        threshold = ((1 << 64) - bound) % bound
        while True:
            product = self.next_u64() * bound
            if product & ((1 << 64) - 1) >= threshold:
                return product >> 64

    def permutation(self, count):
        order = list(range(count))
        for i in range(count - 1, 0, -1):
            j = self.next_int_below(i + 1)
            order[i], order[j] = order[j], order[i]
        return order


def _sequential_norm(rows):
    """sqrt of the sum of squares of each row, accumulated left to right in float64 (as Basin does)."""
    rows = rows.astype(np.float64)
    return np.sqrt(np.cumsum(rows * rows, axis=1)[:, -1])


def _sequential_dot(a, b):
    return float(np.cumsum(a.astype(np.float64) * b.astype(np.float64))[-1]) if a.size else 0.0


def directions(named, count, norm="filter", ignore="biasbn", orthogonalize=False, seed=0):
    """Basin's random directions around parameters `named` (list of (name, float32 array) in order).

    Returns `count` flat float32 vectors over the concatenated parameters."""
    if norm not in ("filter", "layer", "none") or ignore not in ("biasbn", "keep"):
        raise ValueError(f"unknown direction normalization '{norm}' or one-dimensional rule '{ignore}'")
    result = []
    for index in range(count):
        parts = []
        for tensor, (name, weights) in enumerate(named):
            weights = np.asarray(weights, dtype=np.float32)
            if weights.ndim <= 1:
                parts.append(np.zeros(weights.size, np.float32) if ignore == "biasbn" else weights.reshape(-1).copy())
                continue
            d = gaussians(seed, stream_id(STREAM_DIRECTION, index << 20 | tensor), weights.size).astype(np.float32)
            if norm != "none":
                rows = weights.shape[0] if norm == "filter" else 1
                d = d.reshape(rows, -1)
                factor = _sequential_norm(weights.reshape(rows, -1)) / (_sequential_norm(d) + 1e-10)
                d = (d.astype(np.float64) * factor[:, None]).astype(np.float32)
            parts.append(d.reshape(-1))
        result.append(np.concatenate(parts) if parts else np.zeros(0, np.float32))
    if orthogonalize and count >= 2:
        a, b = result[0], result[1]
        projection = _sequential_dot(b, a) / max(_sequential_dot(a, a), 2.2250738585072014e-308)
        result[1] = (b.astype(np.float64) - projection * a.astype(np.float64)).astype(np.float32)
    return result


DEFAULT_STEPS = 21


MAXIMUM_STEPS = 1_000_000  # Basin's Axis.maximumSteps


def axis_values(text, default="-1:1:21"):
    """Values of a Basin axis 'MIN:MAX:STEPS' (each computed directly, not accumulated); ValueError
    for anything else, as Basin refuses it (at most MAXIMUM_STEPS steps, MAX > MIN unless one)."""
    text = default if text is None or text == "" else text
    parts = text.split(":") if isinstance(text, str) else []
    try:
        low, high, steps = float(parts[0]), float(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"axis {str(text)[:60]!r} is not MIN:MAX:STEPS (for example -1:1:21)") from None
    if len(parts) != 3 or not (math.isfinite(low) and math.isfinite(high)) or not 1 <= steps <= MAXIMUM_STEPS \
            or (steps > 1 and not high > low):
        raise ValueError(f"axis {text[:60]!r} needs 1 to {MAXIMUM_STEPS} steps and MAX > MIN")
    if steps == 1:
        return [low]
    return [low + i * (high - low) / (steps - 1) for i in range(steps)]


def framing(values):
    """A plane's axis where the spec gives none: the models' coordinates along it with a quarter
    of their range beyond them on each side, in 21 steps (Basin's LandscapeJob.framing)."""
    low, high = min(values), max(values)
    margin = 0.25 * (high - low)
    return f"{low - margin!r}:{high + margin!r}:{DEFAULT_STEPS}"


def curve_coefficients(kind, bends, t):
    """The weight of each control point at `t` (Basin's Curve.coefficients): Bezier's Bernstein
    weights, or a polygonal chain's, whose first and last segments continue straight outside
    [0, 1]. The straight line is ('polychain', 0)."""
    n = bends + 1
    if kind == "bezier":
        weights, binomial = [], 1.0
        for j in range(n + 1):
            if j > 0:
                binomial = binomial * float(n - j + 1) / float(j)
            weights.append(binomial * _power(t, j) * _power(1 - t, n - j))
        return weights
    if kind != "polychain":
        raise ValueError(f"unknown curve kind '{kind}' (bezier or polychain)")
    position = t * float(n)
    if position < 0 or position > float(n):
        k = 0 if position < 0 else n - 1
        s = position - float(k)
        return [1 - s if j == k else (s if j == k + 1 else 0.0) for j in range(n + 1)]
    return [max(0.0, 1 - abs(position - float(j))) for j in range(n + 1)]


def _power(x, k):
    result = 1.0
    for _ in range(k):
        result *= x
    return result


# What basin.torch.PointJob evaluates, by job kind and variant: `kinds` in the worker's HELLO.
KINDS = ("surface:random", "surface:trajectory", "interpolate", "plane:raw", "plane:orthonormal", "curve")


def job_variant(definition):
    """The capability a job definition needs: its kind, with the variant where a kind has several
    (surface: random or trajectory directions; plane: raw or orthonormal basis)."""
    kind = definition.get("kind")
    if kind == "surface":
        return "surface:trajectory" if definition.get("trajectory") else "surface:random"
    if kind == "plane":
        return "plane:orthonormal" if definition.get("basis") == "orthonormal" else "plane:raw"
    return str(kind)


def trajectory_directions(snapshots, final, count):
    """Basin's TrajectoryPCA: the top `count` principal directions of the offsets θᵢ − θ_final of
    a trajectory's snapshots (centred), unit-norm, each signed so the first snapshot's coordinate
    is non-negative; float32 vectors. The eigenvectors come from LAPACK rather than Basin's
    Jacobi rotations, so they agree to rounding, not bit for bit."""
    if len(snapshots) < count + 1:
        raise ValueError(f"trajectory: PCA of {count} directions needs at least {count + 1} snapshots, "
                         f"got {len(snapshots)}")
    final = np.asarray(final, np.float32)
    offsets = [np.asarray(s, np.float32) - final for s in snapshots]
    centred = np.stack([o.astype(np.float64) for o in offsets])
    centred -= centred.mean(axis=0)
    gram = centred @ centred.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(-values, kind="stable")
    result = []
    for j in order[:count]:
        d = vectors[:, j] @ centred
        norm = math.sqrt(float(d @ d))
        if norm == 0:
            raise ValueError(f"trajectory: the snapshots span fewer than {count} directions")
        sign = -1.0 if float(d @ offsets[0].astype(np.float64)) < 0 else 1.0
        result.append((sign * d / norm).astype(np.float32))
    return result


def combine(coefficients, vectors):
    """Σ c·v accumulated in float64, rounded once to float32 (Basin's VectorMath.combination)."""
    total = np.zeros(vectors[0].shape, np.float64)
    for c, v in zip(coefficients, vectors):
        total += c * v.astype(np.float64)
    return total.astype(np.float32)


def _read_split(files, base, field, locate=None):
    if "csv" in files and files["csv"]:
        raise ValueError(f"{field}: CSV data is not read in Python; write it with `basin data SPEC -o DIR` "
                         "and pass that directory")
    if not files.get("features") or not files.get("labels"):
        raise ValueError(f"{field}: give 'features' and 'labels' files")
    def path(p):
        if locate and p in locate:  # a copy fetched into a worker's cache
            return locate[p]
        return p if os.path.isabs(p) else os.path.join(base, p)
    for key in ("features", "labels"):
        if not files[key].endswith(".npy"):
            raise ValueError(f"{field}.{key}: only .npy files are read in Python, got '{files[key]}'")
    x = np.load(path(files["features"])).astype(np.float32)
    y = np.load(path(files["labels"]))
    if len(x) != len(y):
        raise ValueError(f"{field}: {len(y)} labels for {len(x)} feature rows")
    return x, (y.astype(np.int64) if y.dtype.kind in "iu" else y.astype(np.float32))


def _statistics(x):
    flat = x.reshape(len(x), -1).astype(np.float64)
    n = max(len(flat), 1)
    mean = np.cumsum(flat, axis=0)[-1] / n if len(flat) else np.zeros(flat.shape[1])
    deviations = flat - mean
    squares = np.cumsum(deviations * deviations, axis=0)[-1] if len(flat) else np.zeros(flat.shape[1])
    std = np.sqrt(squares / n)
    return mean.astype(np.float32), np.where(std < 1e-12, 1.0, std).astype(np.float32)


def load_data(spec, base, data_dir=None, locate=None):
    """(train_x, train_y, test_x, test_y) as Basin prepares them for `spec` (a study spec dict).

    `locate` maps a data path as the spec writes it to a local copy (a worker's cache)."""
    if data_dir:
        arrays = [np.load(os.path.join(data_dir, f"{n}.npy")) for n in ("train_x", "train_y", "test_x", "test_y")]
        return tuple(arrays)
    data = spec.get("data") or {}
    if data.get("source") != "files":
        raise ValueError(f"data: source '{data.get('source')}' is generated by Basin; write it once with "
                         "`basin data SPEC -o DIR` and pass --data DIR")
    x, y = _read_split(data.get("train") or {}, base, "data.train", locate)
    shape = data.get("shape")
    if shape:
        x = x.reshape([len(x)] + list(shape))
    if data.get("test"):
        tx, ty = _read_split(data["test"], base, "data.test", locate)
        if shape:
            tx = tx.reshape([len(tx)] + list(shape))
    else:
        fraction = data.get("test_fraction", 0.2)
        order = RandomSource(data.get("seed", 0), stream_id(STREAM_SPLIT)).permutation(len(x))
        test_count = min(len(x), max(0, int(math.floor(fraction * len(x) + 0.5))))
        test, train = order[:test_count], order[test_count:]
        x, y, tx, ty = x[train], y[train], x[test], y[test]
    if data.get("normalize", True):
        mean, std = _statistics(x)
        sample = x.shape[1:]
        x = ((x.reshape(len(x), -1) - mean) / std).reshape((len(x),) + sample)
        tx = ((tx.reshape(len(tx), -1) - mean) / std).reshape((len(tx),) + sample)
    return x, y, tx, ty
