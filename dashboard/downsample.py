"""Peak-preserving downsampling: one trace to at most ``max_points`` points before it is plotted.

Min/max decimation: the points between the first and the last are cut into buckets of equal count, and
each bucket keeps its lowest and its highest point, in time order. A one-sample spike therefore survives
however far a trace is reduced (striding or averaging would lose it), the global minimum and maximum are
always kept, and so are the first and last points, so the trace spans the same time.

Buckets are equal in count rather than in time: the buffers' points are near evenly spaced, and equal
counts need no search, never leave a bucket empty and reshape into one 2-D array, so the whole reduction
is a fixed handful of numpy calls whatever the length (no Python loop per point or per bucket).

Pure functions of their arguments, safe from any thread. Values are expected finite (the protocol
refuses NaN and infinities); a NaN would be picked as its bucket's minimum and maximum.
"""

import numpy as np
import numpy.typing as npt

from dashboard.arrays import FloatArray, check_trace

DEFAULT_MAX_POINTS = 2000
"""Points per trace: about what a chart a few hundred pixels wide can show, twice over."""
MIN_MAX_POINTS = 4
"""The first, the last and one bucket's minimum and maximum."""

IndexArray = npt.NDArray[np.intp]


def minmax_indices(values: FloatArray, max_points: int = DEFAULT_MAX_POINTS) -> IndexArray:
    """Increasing indices of the points to keep: all of them when there are at most ``max_points``."""
    _check(max_points)
    count = len(values)
    if count <= max_points:
        return np.arange(count)
    inner = values[1:-1]
    buckets = (max_points - 2) // 2
    # ceil: at most `buckets` buckets, the last one possibly short.
    size = -(-len(inner) // buckets)
    full = len(inner) // size
    body = inner[: full * size].reshape(full, size)
    starts = np.arange(full) * size
    lows = body.argmin(axis=1) + starts
    highs = body.argmax(axis=1) + starts
    rest = inner[full * size :]
    if len(rest):
        lows = np.append(lows, rest.argmin() + full * size)
        highs = np.append(highs, rest.argmax() + full * size)
    pairs = np.stack((np.minimum(lows, highs), np.maximum(lows, highs)), axis=1).ravel()
    # A bucket whose minimum and maximum are the same point (a flat stretch) keeps it once.
    keep = np.ones(len(pairs), dtype=bool)
    keep[1::2] = pairs[1::2] != pairs[0::2]
    return np.concatenate(([0], pairs[keep] + 1, [count - 1])).astype(np.intp, copy=False)


def downsample(
    ts: FloatArray, values: FloatArray, max_points: int = DEFAULT_MAX_POINTS
) -> tuple[FloatArray, FloatArray]:
    """At most ``max_points`` points of the chronological trace ``(ts, values)``; the inputs if it fits."""
    _check(max_points)
    check_trace(ts, values)
    if len(ts) <= max_points:
        return ts, values
    keep = minmax_indices(values, max_points)
    return ts[keep], values[keep]


def _check(max_points: int) -> None:
    if max_points < MIN_MAX_POINTS:
        raise ValueError(f"max_points must be at least {MIN_MAX_POINTS}, got {max_points}")
