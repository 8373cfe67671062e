"""Shared pieces of the benchmarks: processes, resource use, truth scoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avlab.sim.truth import SimTruth, StreamClock

REPO = Path(__file__).resolve().parents[1]
AVLAB = [sys.executable, "-m", "avlab"]
os.environ.setdefault("LSLAPICFG", str(REPO / "avlab" / "data" / "lsl" / "loopback.cfg"))


@dataclass
class Usage:
    """Resource use of one finished child process."""

    cpu_s: float
    max_rss_mb: float
    wall_s: float
    returncode: int


def wait_usage(proc: subprocess.Popen, started: float) -> Usage:
    """Wait for a child and read its own CPU time and peak RSS (wait4 rusage)."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(
        cpu_s=ru.ru_utime + ru.ru_stime,
        max_rss_mb=ru.ru_maxrss / 1024.0,
        wall_s=time.monotonic() - started,
        returncode=proc.returncode,
    )


def start_sim(args: list[str], log: Path) -> subprocess.Popen:
    """Start ``avlab sim`` with the given options, logging to a file."""
    fh = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([*AVLAB, "sim", *args], stdout=fh, stderr=subprocess.STDOUT)


def wait_streams(names: list[str], timeout_s: float = 30.0) -> None:
    """Block until every named LSL stream is visible."""
    import pylsl

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = {s.name() for s in pylsl.resolve_streams(wait_time=1.0)}
        if all(n in seen for n in names):
            return
    raise RuntimeError(f"streams not visible after {timeout_s} s: {names}")


def sample_indices(clock: StreamClock, true_times: np.ndarray) -> np.ndarray:
    """Sample index of each true time (regular streams)."""
    starts = np.array([s.first_index for s in clock.segments])
    t0 = np.array([s.t0_true for s in clock.segments])
    seg = np.clip(np.searchsorted(t0, true_times + 1e-9, side="right") - 1, 0, len(t0) - 1)
    return starts[seg] + np.round((true_times - t0[seg]) * clock.true_srate).astype(np.int64)


def samples_lost(truth: SimTruth, stream: str, raw_stamps: np.ndarray, true: np.ndarray) -> dict:
    """Samples missing between the first and last recorded sample, from the truth.

    ``true`` is ``truth.match_samples(stream, raw_stamps)``, computed once by the
    caller (it is also needed for the timing error).
    """
    clock = truth.streams[stream]
    unmatched = int(np.isnan(true).sum())
    true = true[~np.isnan(true)]
    if clock.nominal_srate == 0:
        ref = np.array([m.t_true for m in truth.markers])
        inside = (
            ref[(ref >= true.min() - 1e-9) & (ref <= true.max() + 1e-9)] if true.size else ref[:0]
        )
        return {
            "samples": int(raw_stamps.size),
            "lost": int(inside.size - true.size),
            "unmatched": unmatched,
        }
    idx = np.unique(sample_indices(clock, true))
    span = int(idx.max() - idx.min() + 1) if idx.size else 0
    return {
        "samples": int(raw_stamps.size),
        "lost": span - int(idx.size),
        "duplicates": int(true.size - idx.size),
        "unmatched": unmatched,
    }


def error_stats(err_s: np.ndarray) -> dict:
    """Median, p99 and max of absolute timing errors, in milliseconds."""
    err = np.abs(err_s[~np.isnan(err_s)]) * 1e3
    if err.size == 0:
        return {"median": None, "p99": None, "max": None, "n": 0}
    return {
        "median": float(np.median(err)),
        "p99": float(np.percentile(err, 99)),
        "max": float(err.max()),
        "n": int(err.size),
    }


def write_json(path: Path, obj: object) -> None:
    """Write results as indented JSON."""
    path.write_text(json.dumps(obj, indent=2, default=lambda o: asdict(o)))
