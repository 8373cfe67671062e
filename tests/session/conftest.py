from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sessionfactory import Recorded, default_streams, write_session


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete session: EEG with a 250-sample gap, gaze, markers, truth."""
    return write_session(tmp_path_factory.mktemp("sess") / "sub-01", default_streams())


@pytest.fixture
def make_session(tmp_path: Path) -> Callable[..., Path]:
    def _make(streams: list[Recorded] | None = None, **kw: object) -> Path:
        return write_session(tmp_path / "sub-x", streams or default_streams(), **kw)

    return _make
