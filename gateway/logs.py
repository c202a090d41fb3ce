"""Logging for the ``gateway`` package, in the same shape as uvicorn's own lines."""

import logging


def configure_logging(level: str) -> None:
    logger = logging.getLogger("gateway")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     [%(name)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
