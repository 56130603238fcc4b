"""Basin's Python side (distribution `basin-landscapes`).

- `basin.results`: read Basin's `.npz` results with numpy alone;
- `basin.points`: Basin's Philox streams, directions, grids and data splits, bit for bit;
- `basin.torch`: the checkpoint bridge (`nn.Module` <-> Basin checkpoint) and point evaluation;
- `basin.plot`: matplotlib figures of results;
- `basin.crosscheck`: re-evaluation of a result's points in PyTorch;
- `basin.worker`: a Basin worker that evaluates a sweep's points in PyTorch.

Importing `basin` imports none of them, so the reader needs numpy alone.
"""

__version__ = "0.1.0"
