"""The visible data of the Live page as CSV: one row per point, long format (channel, series, time, value)."""

import io
from collections.abc import Iterable
from datetime import UTC, datetime

from dashboard.panel import Panel

HEADER = "channel,series,ts,time_utc,value\n"


def panels_to_csv(panels: Iterable[Panel]) -> bytes:
    out = io.StringIO()
    out.write(HEADER)
    for panel in panels:
        for trace in panel.traces:
            for ts, value in zip(trace.ts.tolist(), trace.values.tolist(), strict=True):
                when = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
                out.write(f"{panel.channel},{trace.series},{ts:.3f},{when},{value!r}\n")
    return out.getvalue().encode()
