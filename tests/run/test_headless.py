"""The private virtual screen and null sound card used by headless runs."""

from __future__ import annotations

import os
import subprocess

from avlab.run.headless import NULL_SINK, virtual_av


def test_virtual_av_starts_and_stops() -> None:
    with virtual_av(size="640x480") as av:
        env = dict(os.environ, **av.env)
        info = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True)
        assert f"Default Sink: {NULL_SINK}" in info.stdout
        assert (av.fbdir / "Xvfb_screen0").stat().st_size > 640 * 480 * 4
        runtime = av.env["XDG_RUNTIME_DIR"]
    assert not os.path.exists(runtime)
