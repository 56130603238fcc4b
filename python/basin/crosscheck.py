"""Re-evaluate sampled points of a Basin result in PyTorch and compare.

    basin-crosscheck RUN/results/surface/seed0.npz            # a sweep's result
    basin-crosscheck surface.npz --spec spirals.yaml         # a `basin surface` result
        [--samples 8] [--tolerance 1e-4] [--model FILE.py:FUNCTION] [--data DIR] [--seed 0]

For a result inside a run directory the job definition comes from the result, the spec from
RUN/spec.yaml and the base directory from RUN/study.json; every grid job of a run can be checked
(surfaces along random or trajectory directions, interpolations, planes, curves). Standalone
`basin surface` (random directions) and `basin interpolate` results are rebuilt from their
metadata. BatchNorm is in eval mode or recomputed at each point (`bn: recompute`: PyTorch
re-estimates the statistics as Basin does, basin.torch.recompute_batchnorm). The parameters at
each sampled point are rebuilt as Basin builds them (basin.points: directions bit for bit), the
model is evaluated by PyTorch on Basin's data split, and every metric must agree within
--tolerance (relative, with an absolute floor of the same size; NaN where both are NaN). Prints
one line per point and exits 1 on any disagreement.
"""
import argparse
import json
import math
import os
import random
import sys

import numpy as np

from . import results as basin_results

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


def axis_text(values):
    values = [float(v) for v in values]
    return f"{values[0]!r}:{values[-1]!r}:{len(values)}"


def definition_of(result):
    """The job definition behind a result: the sweep's own, or rebuilt from a standalone result."""
    meta = result.metadata
    if "job" in meta:
        return dict(meta["job"])
    kind = meta.get("kind")
    if kind == "surface":
        directions = meta.get("directions") or {}
        if directions.get("kind") != "random":
            raise SystemExit("basin-crosscheck: only surfaces with random directions can be rebuilt")
        spec = directions.get("spec") or {}
        definition = {"kind": "surface", "checkpoint": meta["inputs"]["checkpoint"], "x": axis_text(result["x"]),
                      "norm": spec.get("norm"), "ignore": spec.get("ignore"),
                      "orthogonalize": spec.get("orthogonalize"), "seed": spec.get("seed", 0), "bn": meta.get("bn")}
        if "y" in result.arrays:
            definition["y"] = axis_text(result["y"])
        else:
            definition["line"] = True
        return definition
    if kind == "interpolate":
        inputs = meta.get("inputs") or {}
        return {"kind": "interpolate", "from": inputs.get("from"), "to": inputs.get("to"),
                "t": axis_text(result["t"]), "bn": meta.get("bn")}
    raise SystemExit(f"basin-crosscheck: {result.path}: '{kind}' results cannot be re-evaluated here")


def spec_and_base(path, spec_file, base):
    run = os.path.dirname(os.path.abspath(path))
    while run != "/" and not os.path.exists(os.path.join(run, "study.json")):
        run = os.path.dirname(run)
    if spec_file is None and os.path.exists(os.path.join(run, "study.json")):
        spec_file = os.path.join(run, "spec.yaml")
        base = base or json.load(open(os.path.join(run, "study.json")))["base"]
    if spec_file is None:
        raise SystemExit(f"basin-crosscheck: {path} is not inside a run directory; pass --spec SPEC.yaml")
    import yaml
    with open(spec_file) as f:
        spec = yaml.safe_load(f)
    return spec, base or os.getcwd()


def run_outputs(path):
    """The artifacts a run's jobs made (a study's trained, aligned and fitted models), by job name:
    what `@name` inputs read. Empty outside a run directory."""
    run = os.path.dirname(os.path.abspath(path))
    while run != "/" and not os.path.exists(os.path.join(run, "study.json")):
        run = os.path.dirname(run)
    results = os.path.join(run, "results")
    outputs = {}
    if not os.path.isdir(results):
        return outputs
    # Results lie under results/KIND/ or, for jobs the spec named, under results/ itself.
    for folder, subfolders, names in os.walk(results):
        subfolders.sort()
        for name in sorted(names):
            if not name.endswith(".npz"):
                continue
            meta = basin_results.load(os.path.join(folder, name)).metadata
            artifact, job = meta.get("artifact"), meta.get("job_name")
            if artifact and job:
                outputs[job] = os.path.join(run, "artifacts", artifact[:2], artifact)
    return outputs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="basin-crosscheck", description=__doc__.splitlines()[0])
    parser.add_argument("result")
    parser.add_argument("--spec")
    parser.add_argument("--base", help="directory the spec's relative paths start from")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--model", help="FILE.py:FUNCTION building the nn.Module (default: the checkpoint's)")
    parser.add_argument("--data", help="directory from `basin data SPEC -o DIR` (for built-in data sources)")
    parser.add_argument("--data-factory", help="FILE.py:FUNCTION returning the data (basin.torch.load_data_factory)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import torch
        from . import torch as basin_torch
    except ImportError as error:
        raise SystemExit(f"basin-crosscheck: needs torch and safetensors ({error})")
    torch.set_num_threads(1)
    result = basin_results.load(args.result)
    definition = definition_of(result)
    spec, base = spec_and_base(args.result, args.spec, args.base)
    if isinstance(result.metadata.get("bn_recompute"), dict):
        # The convention the result says made its BatchNorm statistics (a standalone result's spec has none).
        spec = dict(spec, bn_recompute=result.metadata["bn_recompute"])
    if args.data is None and args.data_factory is None and (spec.get("data") or {}).get("source") != "files":
        raise SystemExit("basin-crosscheck: the spec's data is generated by Basin; write it with "
                         "`basin data SPEC -o DIR` and pass --data DIR")
    factory = basin_torch.load_factory(args.model) if args.model else None
    arrays = basin_torch.load_data_factory(args.data_factory) if args.data_factory else None
    job = basin_torch.PointJob(definition, spec, base, factory=factory, data=args.data, outputs=run_outputs(args.result),
                               arrays=arrays)
    values = np.stack([np.asarray(result[m], dtype=np.float64).reshape(-1) for m in METRICS], axis=1)
    done = np.asarray(result["done"]).reshape(-1) if "done" in result.arrays else np.ones(len(values), bool)
    candidates = [i for i in range(len(values)) if done[i]]
    picks = sorted(random.Random(args.seed).sample(candidates, min(args.samples, len(candidates))))
    failures = 0
    for index in picks:
        torch_values = job.evaluate(index)
        # Accuracy may differ by a sample whose two best logits tie to float32 rounding.
        counts = [len(job.data[0])] * 2 + [len(job.data[2])] * 2
        allowed = [args.tolerance, args.tolerance + 1.0 / max(counts[1], 1),
                   args.tolerance, args.tolerance + 1.0 / max(counts[3], 1)]
        worst, ok = 0.0, True
        for basin_value, torch_value, limit in zip(values[index], torch_values, allowed):
            if math.isnan(basin_value) and math.isnan(torch_value):
                continue
            error = abs(basin_value - torch_value) / max(abs(basin_value), 1.0)
            worst = max(worst, error)
            ok = ok and error <= limit
        failures += not ok
        print(f"point {index} at {job.coordinates(index)}: basin {np.round(values[index], 6).tolist()} "
              f"torch {np.round(torch_values, 6).tolist()} worst {worst:.2e} {'ok' if ok else 'DIFFERS'}")
    print(f"basin-crosscheck: {len(picks) - failures} of {len(picks)} points agree within {args.tolerance:g}")
    print(f"figure crosscheck_points_agreeing {len(picks) - failures}/{len(picks)}")
    return 1 if failures or not picks else 0


if __name__ == "__main__":
    sys.exit(main())
