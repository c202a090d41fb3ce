"""The array types the dashboard passes around, and the checks and constants shared by their users.

A trace is two 1-D float64 arrays of one length, timestamps and values, oldest first: what a ring's
window, a buffer's snapshot and ``downsample`` take and return. Pure, safe from any thread.
"""

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_EMPTY: FloatArray = np.empty(0, dtype=np.float64)
_EMPTY.flags.writeable = False


def empty_trace() -> tuple[FloatArray, FloatArray]:
    """The trace of a series nobody has fed yet."""
    # Read-only shared empties: a caller that tried to fill them would fail loudly instead of aliasing.
    return _EMPTY, _EMPTY


def check_trace(ts: FloatArray, values: FloatArray) -> None:
    """Raise ValueError unless ``ts`` and ``values`` are 1-D and of one length."""
    if ts.ndim != 1 or ts.shape != values.shape:
        raise ValueError(f"ts and values must be 1-D of one length, got {ts.shape} and {values.shape}")
