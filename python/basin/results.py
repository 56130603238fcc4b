"""Read Basin result files with numpy alone.

A Basin result is a `.npz`: one array per metric (`train_loss`, `train_acc`, `test_loss`,
`test_acc`), the axes (`x` and `y` for surfaces and planes, `t` for paths), a boolean `done`
mask (points not computed are NaN), and a `basin.json` member with the metadata (job, model,
loss, BatchNorm mode, path statistics and barriers).

    from basin import results
    r = results.load("run/results/surface/seed0.npz")
    r.kind, r.shape, r["train_loss"], r.metadata["job"], r.axes   # axes: {"x": ..., "y": ...}
    for coordinates, metrics in r.points(): ...

    basin-results RESULT.npz [--json]     # a summary, or the metadata as JSON
"""
import json
import sys
import zipfile

import numpy as np

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


class Result:
    def __init__(self, path, arrays, metadata):
        self.path, self.arrays, self.metadata = path, arrays, metadata

    def __getitem__(self, name):
        return self.arrays[name]

    @property
    def kind(self):
        return self.metadata.get("kind")

    @property
    def shape(self):
        """The grid's shape; () for a train, align, fit or hessian result (values in metadata['values'])."""
        return tuple(self.arrays["train_loss"].shape) if "train_loss" in self.arrays else ()

    @property
    def axes(self):
        """The coordinate arrays: {'x', 'y'} for grids (rows are y), {'t'} for paths."""
        return {name: self.arrays[name] for name in ("x", "y", "t") if name in self.arrays}

    @property
    def complete(self):
        return bool(np.all(self.arrays["done"])) if "done" in self.arrays else True

    def points(self):
        """(coordinates, {metric: value}) for every computed point, in Basin's order (row-major)."""
        done = self.arrays.get("done")
        for index in np.ndindex(*self.shape):
            if done is not None and not done[index]:
                continue
            if "t" in self.arrays:
                coordinates = (float(self.arrays["t"][index[0]]),)
            elif len(index) == 2:
                coordinates = (float(self.arrays["x"][index[1]]), float(self.arrays["y"][index[0]]))
            else:
                coordinates = (float(self.arrays["x"][index[0]]),)
            yield coordinates, {m: float(self.arrays[m][index]) for m in METRICS if m in self.arrays}

    def minimum(self, metric="train_loss"):
        """(coordinates, value) of the smallest computed value of `metric`."""
        return min(((c, m[metric]) for c, m in self.points() if not np.isnan(m[metric])),
                   key=lambda item: item[1], default=(None, float("nan")))


def load(path):
    """A Result from a Basin `.npz`; raises ValueError naming the file when it is not one."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a Basin result (not a .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files if name != "basin.json"}
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("basin.json"))
    except KeyError:
        raise ValueError(f"{path}: not a Basin result (no basin.json member)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable Basin result ({error})") from None
    if "train_loss" not in arrays and "values" not in metadata:
        raise ValueError(f"{path}: not a Basin result (no train_loss array)")
    return Result(path, arrays, metadata)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        result = load(argv[0])
    except ValueError as error:
        print(f"basin-results: {error}", file=sys.stderr)
        return 1
    if "--json" in argv[1:]:
        print(json.dumps(result.metadata, indent=2))
        return 0
    name = result.metadata.get("job_name") or result.metadata.get("kind")
    if result.shape == ():
        print(f"{result.path}: {name}, {result.kind}")
        for key, value in (result.metadata.get("values") or {}).items():
            print(f"  {key}: {value:.6g}")
        if "artifact" in result.metadata:
            print(f"  artifact: {result.metadata['artifact']}")
        return 0
    done = int(np.sum(result["done"])) if "done" in result.arrays else int(np.prod(result.shape))
    print(f"{result.path}: {name}, {result.kind}, shape {list(result.shape)}, "
          f"{done} of {int(np.prod(result.shape))} points done")
    for axis, values in result.axes.items():
        print(f"  {axis}: {values[0]:g} .. {values[-1]:g} ({len(values)} values)")
    for metric in METRICS:
        if metric in result.arrays:
            values = result[metric]
            finite = values[np.isfinite(values)]
            if finite.size:
                print(f"  {metric}: min {finite.min():.6g}  max {finite.max():.6g}")
    coordinates, value = result.minimum()
    print(f"  lowest train loss {value:.6g} at {coordinates}")
    statistics = result.metadata.get("statistics") or {}
    for key in ("loss_barrier", "error_barrier"):
        if key in statistics:
            print(f"  {key}: {statistics[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
