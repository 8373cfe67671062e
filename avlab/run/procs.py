"""Child processes of a run: the presenter and the simulated lab.

Both run in their own process so that a crash there (a PsychoPy or driver
failure, a killed simulator) cannot take the recorder down with it: the
recorder keeps everything recorded so far and the session is marked
incomplete. Their stderr goes to files in the session folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from avlab._logging import logger
from avlab.errors import AvlabError

__all__ = ["ChildProcess", "PresenterProcess", "SimProcess"]


class ChildProcess:
    """A child process with its stderr in a log file and a clean stop.

    Parameters
    ----------
    argv : list of str
    log_file : Path
        Receives the child's stderr.
    env : dict of str to str
        Extra environment variables.
    what : str
        Name used in messages ("presenter", "simulated lab").
    """

    def __init__(self, argv: list[str], log_file: Path, env: dict[str, str], what: str) -> None:
        self.argv, self.log_file, self.what = argv, Path(log_file), what
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=dict(os.environ, **env),
            process_group=0,  # Ctrl-C in the terminal reaches only avlab run, which stops us
        )
        logger.info("started %s (pid %d): %s", what, self.proc.pid, " ".join(argv))

    def poll(self) -> int | None:
        """Exit status, or None while running."""
        return self.proc.poll()

    def stderr_tail(self, n: int = 400) -> str:
        """Return the last ``n`` characters of the child's stderr (for error messages)."""
        if not self._log.closed:
            self._log.flush()
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return " | ".join(lines[-3:])[-n:]

    def terminate(self) -> None:
        """Ask the child (and its process group) to stop with SIGTERM."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (SIGKILL after ``timeout``), return the exit status."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0f s: killing it", self.what, timeout or 0)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        self._log.close()
        return rc


class PresenterProcess(ChildProcess):
    """``python -m avlab.present CONFIG.json`` with the ready/go handshake."""

    def __init__(self, config_file: Path, log_file: Path, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "avlab.present", str(config_file)]
        super().__init__(argv, log_file, env, "presenter")
        self.ready: dict = {}

    def wait_ready(self, timeout: float = 120.0) -> dict:
        """Wait for the presenter's ready line (window open, marker stream up).

        Returns
        -------
        ready : dict
            The presenter's ready message (marker stream, refresh rate, audio backend).
        """
        assert self.proc.stdout is not None
        result: list[bytes] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.strip().startswith(b"{"):
                    result.append(line)
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            rc = self.proc.poll()
            self.terminate()
            self.wait(5.0)
            state = f"exited with status {rc}" if rc is not None else f"silent for {timeout:g} s"
            raise AvlabError(
                f"the presenter {state} before its window was ready: {self.stderr_tail()}",
                f"See {self.log_file} for details; check DISPLAY/audio, or use --headless.",
            )
        self.ready = json.loads(result[0])
        return self.ready

    def go(self) -> None:
        """Tell the presenter to start the trials."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise AvlabError(
                f"the presenter stopped before the start: {self.stderr_tail()}",
                f"See {self.log_file}.",
            ) from exc


class SimProcess(ChildProcess):
    """The simulated lab (``python -m avlab.sim CONFIG.json``) following the presenter."""

    def __init__(self, config_file: Path, log_file: Path, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "avlab.sim", str(config_file)]
        super().__init__(argv, log_file, env, "simulated lab")

    def wait_started(self, truth_file: Path, timeout: float = 60.0) -> None:
        """Wait until the simulator has written its truth file (its outlets follow at once)."""
        deadline = time.monotonic() + timeout
        while not Path(truth_file).exists():
            if self.poll() is not None or time.monotonic() > deadline:
                state = f"exited with status {self.poll()}" if self.poll() is not None else (
                    f"did not start in {timeout:g} s")  # fmt: skip
                raise AvlabError(
                    f"the simulated lab {state}: {self.stderr_tail()}",
                    f"See {self.log_file}.",
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int:
        """Stop the simulator and wait for it to write its final truth."""
        self.terminate()
        t0 = time.monotonic()
        rc = self.wait(timeout)
        logger.info("simulated lab stopped in %.1f s (status %d)", time.monotonic() - t0, rc)
        return rc
