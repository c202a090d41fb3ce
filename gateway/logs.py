"""Logging for the gateway and uvicorn: one format for both, text or JSON lines (``PULSE_LOG_FORMAT``).

``python -m gateway`` hands uvicorn ``uvicorn_log_config()``, so uvicorn's lines and the gateway's share
a format; with ``--log-config FILE`` the operator's file is used instead. The ``gateway`` loggers
propagate to the root logger like any library's, so whatever configuration is in force governs them.
Only when nothing is configured (plain ``uvicorn gateway.app:app`` without ``--log-config``) does
``configure_logging`` give the ``gateway`` logger a handler of its own, so its lines are not lost.

Records may carry fields (``extra=``): connection events carry ``conn_id`` (the client id the welcome
sends) and ``client`` (address:port). The JSON formatter writes them as keys; the text formatter appends
them as ``key=value``.
"""

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from uvicorn.config import LOGGING_CONFIG

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(levelname)s:     [%(name)s] %(message)s"
"""The gateway's text lines, shaped like uvicorn's own ``INFO:     message``."""

_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    # uvicorn's coloured copy of its message, for its own text formatter only.
    "color_message",
}
"""Attributes every record has; anything else on a record came from ``extra=``."""


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record was logged with (``extra=``), in the order they were given."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
    record's fields, and ``exc_info`` with the traceback when there is one.

    Always ASCII: a newline or U+2028 inside a message or field is escaped, so every line of the log is
    one whole record for a log shipper that splits on line breaks.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, then the record's fields as ``key=value``."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        if not fields:
            return line
        return line + " " + " ".join(f"{key}={value}" for key, value in fields.items())


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def uvicorn_log_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: uvicorn's own configuration
    (its loggers, stderr for ``uvicorn.error``, stdout for the access log), with JSON formatters when
    ``log_format`` is ``json``, plus a root handler the ``gateway`` loggers reach by propagating."""
    config = copy.deepcopy(LOGGING_CONFIG)
    gateway_formatter: dict[str, Any] = {"()": "gateway.logs.TextFormatter"}
    if log_format == "json":
        gateway_formatter = {"()": "gateway.logs.JsonFormatter"}
        config["formatters"] = {"default": dict(gateway_formatter), "access": dict(gateway_formatter)}
    config["formatters"]["gateway"] = gateway_formatter
    config["handlers"]["gateway"] = {
        "formatter": "gateway",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    # On the root logger, not on ``gateway``: other libraries' warnings (asyncio, redis) come out in the
    # same format, and a ``gateway`` logger without handlers stays one a user's configuration can govern.
    config["root"] = {"handlers": ["gateway"], "level": "WARNING"}
    config["loggers"]["gateway"] = {"level": level.upper()}
    return config


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Give the ``gateway`` logger a handler, unless logging is configured already (a handler on it or on
    the root logger: ``python -m gateway``, ``--log-config``, a test runner, an embedding program)."""
    logger = logging.getLogger("gateway")
    # ``python -m gateway`` imports some ``gateway.*`` modules (and makes their loggers) before uvicorn
    # applies a ``--log-config`` file, whose ``disable_existing_loggers`` (on unless the file says
    # otherwise) would then silence them: they exist early only by import order, so they are let back
    # under the file's rules like the loggers made after it.
    for name, existing in logging.Logger.manager.loggerDict.items():
        if (name == "gateway" or name.startswith("gateway.")) and isinstance(existing, logging.Logger):
            existing.disabled = False
    if logger.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
