"""avlab: multimodal lab sessions for hearing research.

Simulate a lab, record every LSL stream into one crash-safe session, put all
streams on one clock, and hand the result to BIDS, decoding and separation.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from avlab._logging import logger, set_log_level

try:
    __version__ = version("avlab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "logger", "set_log_level"]
