"""Test-wide set-up: liblsl confined to loopback before pylsl is imported."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["LSLAPICFG"] = str(REPO / "avlab" / "data" / "lsl" / "loopback.cfg")
# Shared test data (real speech, XDF files); tests may read it, the product may not.
SHARED_DATA = REPO.parent / "shared" / "data"
