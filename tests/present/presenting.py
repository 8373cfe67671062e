"""Helpers of the presenter tests: a small plan and a presenter process with a handshake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pylsl

from avlab.protocol.plan import (
    CuePlan,
    QuestionPlan,
    SessionPlan,
    StimulusRequest,
    SwitchPlan,
    TalkerPlay,
    TrialPlan,
)
from avlab.run.headless import VirtualAV

SIZE = (1280, 720)
SR = 48000


class Capture(threading.Thread):
    """Record the null sink's monitor with ``parec``; stamp each read with LSL time.

    Each captured sample's time is bounded from below by the LSL time at which
    the block holding it was read, minus its position in the capture; the lower
    envelope of those bounds gives the time of sample 0. The monitor's own
    latency stays in the figure (a constant few ms, see docs/presenter.md).
    """

    def __init__(self, env: dict[str, str], monitor: str) -> None:
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(
            ["parec", "-d", monitor, "--raw", "--format=float32le", f"--rate={SR}",
             "--channels=2", "--latency-msec=5"],
            stdout=subprocess.PIPE, env=dict(os.environ, **env),
        )  # fmt: skip
        self.blocks: list[np.ndarray] = []
        self.reads: list[tuple[float, int]] = []  # (LSL time after read, samples so far)

    def run(self) -> None:
        assert self.proc.stdout is not None
        n = 0
        while True:
            raw = self.proc.stdout.read1(8 * 480)
            t = pylsl.local_clock()
            if not raw:
                break
            x = np.frombuffer(raw[: len(raw) // 8 * 8], dtype=np.float32).reshape(-1, 2)
            self.blocks.append(x)
            n += x.shape[0]
            self.reads.append((t, n))

    def stop(self) -> tuple[np.ndarray, float]:
        self.proc.terminate()
        self.proc.wait(10)
        self.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        audio = np.concatenate(self.blocks)
        t0 = min(t - n / SR for t, n in self.reads)  # time of sample 0 (lower envelope)
        return audio, t0

    def t0_near(self, when: float, span_s: float = 3.0) -> float:
        """Time of sample 0 from the reads within ``span_s`` of ``when`` only.

        A loaded machine can make ``parec`` drop samples (an overrun); after a drop the
        whole-run lower envelope maps later samples too early. The local envelope does not.
        """
        near = [t - n / SR for t, n in self.reads if abs(t - when) < span_s]
        return min(near) if near else min(t - n / SR for t, n in self.reads)


def make_plan(reqs: list[StimulusRequest], n_trials: int) -> SessionPlan:
    """Two-talker trials with a cue, a switch and a question (auto-answered)."""
    talkers = [
        TalkerPlay(talker="a", stim_id="a1", side="left", azimuth_deg=-45,
                   position=(-0.45, 0.05)),
        TalkerPlay(talker="b", stim_id="b1", side="right", azimuth_deg=45,
                   position=(0.45, 0.05)),
    ]  # fmt: skip
    trials = [
        TrialPlan(
            index=k,
            block="b",
            talkers=talkers,
            attended=k % 2,
            cue=CuePlan(modality="both", duration_s=0.5),
            switch=SwitchPlan(at_s=0.8, to=1 - k % 2),
            question=QuestionPlan(text="Which?", options=["x", "y"], correct=0),
            response="choice",
            iti_s=0.3,
            instructions="Listen." if k == 1 else "",
        )  # fmt: skip
        for k in range(1, n_trials + 1)
    ]
    return SessionPlan(protocol="test", participant="01", session="01", seed=1,
                       trials=trials, stimuli=reqs)  # fmt: skip


def start_presenter(tmp: Path, av: VirtualAV, stim: Path, plan: SessionPlan, **kw: object):
    """Start ``python -m avlab.present`` with a handshake; return (proc, ready, cfg dict)."""
    plan_file = tmp / "plan.json"
    plan_file.write_text(plan.model_dump_json())
    cfg = {
        "plan_file": str(plan_file), "stimuli_dir": str(stim), "out_dir": str(tmp / "out"),
        "marker_name": f"t{uuid.uuid4().hex[:8]}-Presenter", "size": list(SIZE),
        "responder": "auto", "handshake": True, "seed": 3, **kw,
    }  # fmt: skip
    cfg_file = tmp / "presenter.json"
    cfg_file.write_text(json.dumps(cfg))
    with open(tmp / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avlab.present", str(cfg_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            env=dict(os.environ, **av.env), text=True,
        )  # fmt: skip
    line = proc.stdout.readline()
    assert line, (tmp / "stderr.log").read_text()
    return proc, json.loads(line), cfg


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """Wait for the presenter and close its pipes; return the exit code."""
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()
    return rc
