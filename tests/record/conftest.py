from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

OUTLET = Path(__file__).with_name("outlet.py")
REPO = Path(__file__).resolve().parents[2]


def _stream_cfg(name: str, **kw: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "name": name,
        "type": "EEG",
        "channels": 4,
        "srate": 250.0,
        "format": "float32",
        "source_id": f"{name}-src",
        "n": 500,
        "chunk": 1,
    }
    cfg.update(kw)
    return cfg


@pytest.fixture
def uid(request: pytest.FixtureRequest) -> str:
    return f"{uuid.uuid4().hex[:8]}_{request.node.name[:20]}_"


@pytest.fixture
def outlets() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(streams: list[dict[str, object]], **kw: object) -> subprocess.Popen[str]:
        cfg = {"streams": streams, **kw}
        p = subprocess.Popen(
            [sys.executable, str(OUTLET), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=os.environ.copy(),
        )
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


@pytest.fixture
def stream_cfg() -> Callable[..., dict[str, object]]:
    return _stream_cfg


@pytest.fixture
def avlab_cmd() -> Callable[..., list[str]]:
    def cmd(*args: str) -> list[str]:
        return [sys.executable, "-m", "avlab", *args]

    return cmd
