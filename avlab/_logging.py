"""The package logger. One logger, no handlers added at import."""

from __future__ import annotations

import logging

logger = logging.getLogger("avlab")


def set_log_level(level: int | str) -> None:
    """Set the level of the ``avlab`` logger.

    Parameters
    ----------
    level : int | str
        A :mod:`logging` level or its name (``"DEBUG"``, ``"INFO"``, ...).
    """
    if isinstance(level, str):
        level = level.upper()
    logger.setLevel(level)
