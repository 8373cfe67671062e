"""Where liblsl reads its configuration from.

liblsl reads ``LSLAPICFG`` once, when the library is first used. avlab ships a
configuration that keeps all LSL traffic on this machine's loopback interface
(``avlab/data/lsl/loopback.cfg``); tests, the demo and the benchmarks use it so
that no discovery packet leaves the machine. Real lab use keeps liblsl's
defaults (streams from other hosts must be found).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["loopback_config", "use_loopback"]


def loopback_config() -> Path:
    """Return the path of the shipped loopback-only liblsl configuration.

    Returns
    -------
    path : Path
        Absolute path of ``loopback.cfg`` inside the installed package.
    """
    return Path(str(files("avlab") / "data" / "lsl" / "loopback.cfg"))


def use_loopback() -> Path:
    """Point liblsl at the loopback configuration unless one is already set.

    Must run before pylsl opens its first stream. An existing ``LSLAPICFG``
    (set by the lab or by the caller) is respected.

    Returns
    -------
    path : Path
        The configuration liblsl will read.
    """
    current = os.environ.get("LSLAPICFG")
    if current:
        return Path(current)
    path = loopback_config()
    os.environ["LSLAPICFG"] = str(path)
    return path
