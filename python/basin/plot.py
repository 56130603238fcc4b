"""Plot Basin results with matplotlib, as `basin plot` draws them.

    basin-plot RESULT.npz -o out.png [--metric train_loss] [--log] [--3d]
    basin-plot RUN/results/interpolate/*.npz -o paths.pdf   # several paths, one chart

- 2-D results (surfaces, planes): filled contours with contour lines and a colour bar, the
  centre (or the three models of a plane) marked; `--3d` draws the same grid as a 3-D surface.
- 1-D results (lines, interpolations, curves): train and test of the metric's quantity against
  x or t; several files overlay on one chart.

Any format matplotlib writes (.png, .pdf, .svg). Needs numpy and matplotlib.
"""
import argparse
import os
import sys

import numpy as np

from . import results as basin_results


def title(result):
    meta = result.metadata
    name = meta.get("job_name") or meta.get("kind") or "result"
    layers = (meta.get("model") or {}).get("layers") or []
    short = []
    for layer in layers:
        kind = layer if isinstance(layer, str) else layer.get("type")
        if kind == "linear":
            short.append(f"fc{layer.get('out_features')}")
        elif kind == "conv2d":
            short.append(f"conv·{layer.get('out_channels')}")
        elif kind not in ("flatten", "dropout"):
            short.append({"batchnorm1d": "bn", "batchnorm2d": "bn"}.get(kind, kind))
    return f"{' '.join(short)} — {name}" if short else name


def plot_grid(result, metric, log, three_d, axes_out):
    import matplotlib.pyplot as plt
    from matplotlib import colors
    values = np.asarray(result[metric], dtype=np.float64)
    x, y = result["x"], result["y"]
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"{result.path}: '{metric}' has no computed points")
    norm = None
    if log:
        positive = finite[finite > 0]
        if positive.size == 0:
            raise ValueError(f"{result.path}: '{metric}' has no positive values for a log scale")
        norm = colors.LogNorm(vmin=positive.min(), vmax=finite.max())
    figure = plt.figure(figsize=(6.4, 5.2))
    X, Y = np.meshgrid(x, y)
    if three_d:
        ax = figure.add_subplot(projection="3d")
        shown = np.log10(np.where(values > 0, values, np.nan)) if log else values
        surface = ax.plot_surface(X, Y, np.ma.masked_invalid(shown), cmap="viridis", linewidth=0, antialiased=True)
        ax.set_zlabel(f"log10 {metric}" if log else metric)
        figure.colorbar(surface, ax=ax, shrink=0.6, pad=0.12, label=metric)
    else:
        ax = figure.add_subplot()
        masked = np.ma.masked_invalid(values)
        levels = (np.geomspace(norm.vmin, norm.vmax, 25) if log else np.linspace(finite.min(), finite.max(), 25))
        filled = ax.contourf(X, Y, masked, levels=levels, cmap="viridis", norm=norm)
        ax.contour(X, Y, masked, levels=levels[::3], colors="white", linewidths=0.6, norm=norm)
        figure.colorbar(filled, ax=ax, label=metric)
        if "model_x" in result.arrays:
            ax.scatter(result["model_x"], result["model_y"], c="red", marker="o", zorder=3)
            for i, (mx, my) in enumerate(zip(result["model_x"], result["model_y"])):
                ax.annotate(f"θ{i + 1}", (mx, my), textcoords="offset points", xytext=(4, 4), color="red")
        elif result.kind == "surface" and x.min() <= 0 <= x.max() and y.min() <= 0 <= y.max():
            ax.scatter([0], [0], c="red", marker="+", s=80, zorder=3)
        ax.set_aspect("auto")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title(result), fontsize=10)
    axes_out.append(ax)
    return figure


def plot_paths(results, metric, log):
    import matplotlib.pyplot as plt
    quantity = metric.split("_", 1)[1] if "_" in metric else metric
    figure, ax = plt.subplots(figsize=(6.4, 4.4))
    for result in results:
        axis_name = "t" if "t" in result.arrays else "x"
        coordinates = result[axis_name]
        label = result.metadata.get("job_name") or os.path.basename(result.path)
        for split, style in (("train", "-"), ("test", "--")):
            name = f"{split}_{quantity}"
            if name in result.arrays and np.isfinite(result[name]).any():
                ax.plot(coordinates, result[name], style, label=f"{label} {split}" if len(results) > 1 else split)
    ax.set_xlabel("t" if all("t" in r.arrays for r in results) else "x")
    ax.set_ylabel(quantity)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title(results[0]) if len(results) == 1 else f"{len(results)} paths", fontsize=10)
    return figure


def main(argv=None):
    parser = argparse.ArgumentParser(prog="basin-plot", description="Plot Basin results with matplotlib.")
    parser.add_argument("results", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--metric", default="train_loss")
    parser.add_argument("--log", action="store_true", help="logarithmic colour or y scale")
    parser.add_argument("--3d", dest="three_d", action="store_true", help="2-D results as a 3-D surface")
    args = parser.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: F401
    except ImportError:
        print("basin-plot: needs matplotlib (pip install 'basin-landscapes[plot]')", file=sys.stderr)
        return 1
    try:
        results = [basin_results.load(path) for path in args.results]
        for result in results:
            if args.metric not in result.arrays:
                raise ValueError(f"{result.path}: no array '{args.metric}'")
        grids = [r for r in results if len(r.shape) == 2]
        if grids and len(results) > 1:
            raise ValueError("a 2-D result is drawn alone; give one file")
        figure = (plot_grid(grids[0], args.metric, args.log, args.three_d, []) if grids
                  else plot_paths(results, args.metric, args.log))
        figure.tight_layout()
        figure.savefig(args.output, dpi=150)
    except ValueError as error:
        print(f"basin-plot: {error}", file=sys.stderr)
        return 1
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
