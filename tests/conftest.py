"""Test-wide set-up: liblsl confined to loopback before pylsl is imported."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["LSLAPICFG"] = str(REPO / "avlab" / "data" / "lsl" / "loopback.cfg")
# Shared test data (real speech, XDF files); tests may read it, the product may not.
SHARED_DATA = REPO.parent / "shared" / "data"


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def stimuli_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One stimuli folder per test run, shared: ``<cache>/<protocol>/`` (built on first use).

    Building a protocol's stimuli (speech synthesis, talker videos) takes tens of
    seconds; the run, simulation and BIDS tests all need the same ones.
    """
    return tmp_path_factory.mktemp("stimuli-cache")
