"""A private virtual screen and sound card for headless runs (demo, CI, piloting).

:func:`virtual_av` starts ``Xvfb`` on a free display (``-displayfd``) and a
PulseAudio daemon of its own whose default sink is a stereo null sink
(``module-null-sink``); the sink's ``.monitor`` source captures what was
played. Both live in a temporary runtime folder and are stopped on exit, so
nothing touches the machine's own display or sound. PsychoPy and sounddevice
reach PulseAudio through ALSA's ``pulse`` plugin (Debian ``libasound2-plugins``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from avlab._logging import logger
from avlab.errors import AvlabError

__all__ = ["NULL_SINK", "VirtualAV", "virtual_av"]

NULL_SINK = "avlab_null"


@dataclass(frozen=True)
class VirtualAV:
    """Environment of a running virtual display and sound card.

    Attributes
    ----------
    display : str
        ``DISPLAY`` value (``":N"``).
    env : dict of str to str
        Variables to add to a child process's environment (DISPLAY, PulseAudio paths).
    fbdir : Path
        Folder of Xvfb's memory-mapped framebuffer (``Xvfb_screen0``, XWD format).
    monitor : str
        Name of the null sink's monitor source (what was played).
    """

    display: str
    env: dict[str, str]
    fbdir: Path
    monitor: str


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise AvlabError(
            f"`{tool}` is not installed; a headless run needs it.",
            f"Install the Debian package {package} (make demo/test does it as root).",
        )
    return path


def _start_xvfb(fbdir: Path, size: str) -> tuple[subprocess.Popen, str]:
    xvfb = _need("Xvfb", "xvfb")
    r, w = os.pipe()
    log = fbdir.parent / "xvfb.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [xvfb, "-displayfd", str(w), "-screen", "0", f"{size}x24", "-fbdir", str(fbdir),
             "-nolisten", "tcp", "+extension", "GLX", "-noreset"],
            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    os.close(w)
    deadline = time.monotonic() + 15.0
    buf = b""
    with os.fdopen(r, "rb", buffering=0) as f:
        while not buf.endswith(b"\n") and time.monotonic() < deadline:
            chunk = f.read(16)
            if not chunk:
                break
            buf += chunk
    if not buf.strip():
        proc.kill()
        proc.wait()
        text = log.read_text(errors="replace")[-300:]
        raise AvlabError(f"Xvfb did not start: {text.strip()}", "Check that xvfb is installed.")
    return proc, f":{int(buf.strip())}"


def _start_pulse(runtime: Path) -> dict[str, str]:
    pulse = _need("pulseaudio", "pulseaudio")
    env = {
        "XDG_RUNTIME_DIR": str(runtime),
        "PULSE_RUNTIME_PATH": str(runtime / "pulse"),
        "PULSE_SERVER": f"unix:{runtime / 'pulse' / 'native'}",
        "PULSE_SINK": NULL_SINK,
        "PULSE_SOURCE": f"{NULL_SINK}.monitor",
    }
    cmd = [
        pulse, "-D", "--exit-idle-time=-1", "--system=false", "-n", "--daemonize=yes",
        "--load=module-native-protocol-unix",
        f"--load=module-null-sink sink_name={NULL_SINK} channels=2 rate=48000",
        "--load=module-always-sink",
    ]  # fmt: skip
    res = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True)
    if res.returncode != 0:
        raise AvlabError(
            f"PulseAudio did not start: {res.stderr.strip()[-300:]}",
            "Install pulseaudio (Debian) or run on a machine with a sound server.",
        )
    sock = runtime / "pulse" / "native"
    deadline = time.monotonic() + 10.0
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return env


def _stop_pulse(env: dict[str, str]) -> None:
    pid_file = Path(env["PULSE_RUNTIME_PATH"]) / "pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        subprocess.run(["pulseaudio", "-k"], env=dict(os.environ, **env), capture_output=True)


@contextmanager
def virtual_av(size: str = "1280x720", *, audio: bool = True) -> Iterator[VirtualAV]:
    """Run a private Xvfb screen and PulseAudio null sink for the duration of a block.

    Parameters
    ----------
    size : str
        Screen size ``WIDTHxHEIGHT`` in pixels.
    audio : bool
        Also start the PulseAudio null sink.

    Yields
    ------
    av : VirtualAV
    """
    runtime = Path(tempfile.mkdtemp(prefix="avlab-av-"))
    runtime.chmod(0o700)
    fbdir = runtime / "fb"
    fbdir.mkdir()
    xvfb, display = _start_xvfb(fbdir, size)
    env = {"DISPLAY": display}
    pulse_env: dict[str, str] = {}
    try:
        if audio:
            pulse_env = _start_pulse(runtime)
            env |= pulse_env
        logger.info("virtual display %s, sound: %s", display, "null sink" if audio else "none")
        yield VirtualAV(display=display, env=env, fbdir=fbdir, monitor=f"{NULL_SINK}.monitor")
    finally:
        if pulse_env:
            _stop_pulse(pulse_env)
        xvfb.terminate()
        try:
            xvfb.wait(5.0)
        except subprocess.TimeoutExpired:
            xvfb.kill()
        shutil.rmtree(runtime, ignore_errors=True)
