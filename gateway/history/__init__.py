"""History: every ``data:`` sample kept in tiers, behind one seam chosen by URL (``PULSE_HISTORY_URL``).

- ``duckdb://`` (the default): an embedded DuckDB file, ``history.duckdb`` under ``PULSE_DATA_DIR``, or
  ``duckdb:///absolute/path.duckdb``;
- ``postgresql://user@host/db``: PostgreSQL shared by several gateway processes;
- ``none://``: no history (the range API answers 404).
"""

from urllib.parse import urlsplit

from gateway.history.base import HistoryStore, RangeResult, StoreError
from gateway.history.recorder import Recorder
from gateway.history.tiers import build_tiers
from gateway.settings import Settings

__all__ = ["HistoryStore", "RangeResult", "Recorder", "StoreError", "make_recorder"]


def make_recorder(settings: Settings) -> Recorder | None:
    url = settings.history_url
    parts = urlsplit(url)
    tiers = build_tiers(
        settings.history_raw_retention,
        settings.history_1s_retention,
        settings.history_1m_retention,
        settings.history_1h_retention,
    )
    store: HistoryStore
    if parts.scheme == "none":
        return None
    if parts.scheme == "duckdb":
        # Imported lazily so a backend's dependencies load only when it is chosen.
        from pathlib import Path

        from gateway.history.embedded import EmbeddedStore

        path = Path(parts.path) if parts.path not in ("", "/") else settings.data_dir / "history.duckdb"
        store = EmbeddedStore(path, tiers)
    elif parts.scheme in ("postgresql", "postgres"):
        from gateway.history.postgres import PostgresStore

        store = PostgresStore(url, tiers)
    else:
        raise ValueError(
            f"PULSE_HISTORY_URL={url!r}: unsupported scheme {parts.scheme!r}; "
            "use duckdb://, postgresql:// or none://"
        )
    return Recorder(
        store,
        flush_interval=settings.history_flush_interval,
        max_pending=settings.history_max_pending,
        nice=settings.history_writer_nice,
    )
