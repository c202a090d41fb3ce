"""The visible data of the Live page as CSV: one row per point, long format.

A stored bucket is one row: its start time, its mean as ``value``, and its ``min``, ``max`` and sample
``count``; a raw or live sample has ``min`` = ``max`` = ``value`` and ``count`` 1.
"""

import io
from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np

from dashboard.panel import Panel

HEADER = "channel,series,ts,time_utc,value,min,max,count\n"


def panels_to_csv(panels: Iterable[Panel]) -> bytes:
    out = io.StringIO()
    out.write(HEADER)
    for panel in panels:
        for trace in panel.traces:
            history = trace.history
            columns = (
                np.concatenate((history.t, trace.ts)).tolist(),
                np.concatenate((history.mean, trace.values)).tolist(),
                np.concatenate((history.min, trace.values)).tolist(),
                np.concatenate((history.max, trace.values)).tolist(),
                np.concatenate((history.count, np.ones(len(trace.ts)))).tolist(),
            )
            for ts, value, low, high, count in zip(*columns, strict=True):
                when = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
                out.write(
                    f"{panel.channel},{trace.series},{ts:.3f},{when},{value!r},{low!r},{high!r},{int(count)}\n"
                )
    return out.getvalue().encode()
