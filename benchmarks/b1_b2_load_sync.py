"""B1 (load and cost) and B2 (sync accuracy), measured in one run.

The simulated lab publishes the B1 load (EEG 256 ch @ 2048 Hz, gaze 200 Hz,
two 48 kHz audio streams, markers, camera frame times) with all three kinds of
clock error at once (B2): the simulator runs in its own time namespace 37 s
away, the EEG is stamped on arrival with 1 ms jitter and a true rate 100 ppm off
nominal, the gaze carries a drifting device clock answered by time echo.
``avlab record`` and LabRecorder's C++ core record the same streams at the same
time. Then:

- B1: samples lost (from the simulator's truth, per stream), CPU seconds and
  peak RSS of each recorder (the kernel's rusage of each child process);
- B2: |aligned time - true time| per stream, avlab (``avlab.session``) against
  pyxdf (``synchronize_clocks`` + ``dejitter_timestamps``) on LabRecorder's file.

Usage: python benchmarks/b1_b2_load_sync.py --duration 600 --out bench-out/b1
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyxdf
from _common import (
    AVLAB,
    Usage,
    error_stats,
    samples_lost,
    start_sim,
    wait_streams,
    wait_usage,
    write_json,
)

from avlab.record.xdf import import_xdf
from avlab.session import Session
from avlab.sim.truth import load_truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out/b1"))
    ap.add_argument("--host-offset", type=int, default=37)
    ap.add_argument("--eeg-channels", type=int, default=256)
    ap.add_argument("--eeg-rate", type=float, default=2048.0)
    ap.add_argument("--analyze-only", action="store_true", help="score an earlier run again")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.analyze_only:
        usage = record_run(args, out)
        write_json(out / "usage.json", usage)
    analyze(out, args.duration)


def record_run(args: argparse.Namespace, out: Path) -> dict:
    """Start the simulator, record with both recorders at once, return their usage."""
    truth_path = (out / "sim_truth.json").resolve()
    truth_path.unlink(missing_ok=True)
    prefix = f"B1{int(time.time()) % 100000}"
    sim = start_sim(
        [
            "--seed",
            "7",
            "--duration",
            str(args.duration + 40),
            "--eeg-channels",
            str(args.eeg_channels),
            "--eeg-rate",
            str(args.eeg_rate),
            "--host-offset",
            str(args.host_offset),
            "--jitter-ms",
            "1",
            "--rate-ppm",
            "100",
            "--gaze-drift-ppm",
            "-80",
            "--trial-s",
            "20",
            "--prefix",
            prefix,
            "--truth",
            str(truth_path),
        ],
        out / "sim.log",
    )
    sim_started = time.monotonic()
    try:
        deadline = time.monotonic() + 30
        while not truth_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        names = sorted(load_truth(truth_path).streams)
        wait_streams(names)
        time.sleep(2.0)
        parent = out / "avlab"
        xdf = out / "labrecorder.xdf"
        xdf.unlink(missing_ok=True)
        shutil.rmtree(parent, ignore_errors=True)
        parent.mkdir()
        cmd = [*AVLAB, "record", str(parent), "--duration", str(args.duration), "--quiet"]
        for n in names:
            cmd += ["--stream", n]
        t0 = time.monotonic()
        rec = subprocess.Popen(
            cmd, stdout=open(out / "avlab-record.log", "w"), stderr=subprocess.STDOUT
        )
        lr = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("_labrecorder.py")),
                str(xdf),
                str(args.duration),
                *names,
            ],
            stdout=open(out / "labrecorder.log", "w"),
            stderr=subprocess.STDOUT,
        )
        use_lr = wait_usage(lr, t0)
        use_av = wait_usage(rec, t0)
    finally:
        sim.terminate()
        use_sim = wait_usage(sim, sim_started)
    return {"avlab": use_av, "labrecorder": use_lr, "simulator": use_sim}


def analyze(out: Path, duration: float) -> None:
    """Score both recordings against the simulator's truth and write results.json."""
    import json

    truth_path = out / "sim_truth.json"
    u = json.loads((out / "usage.json").read_text())
    use_av, use_lr, use_sim = (Usage(**u[k]) for k in ("avlab", "labrecorder", "simulator"))
    parent = out / "avlab"
    xdf = out / "labrecorder.xdf"

    truth = load_truth(truth_path)
    names = sorted(truth.streams)
    results: dict = {
        "duration_s": duration,
        "streams": names,
        "usage": {"avlab": use_av, "labrecorder": use_lr, "simulator": use_sim},
        "ratios": {
            "cpu_avlab_over_labrecorder": use_av.cpu_s / use_lr.cpu_s,
            "rss_avlab_over_labrecorder": use_av.max_rss_mb / use_lr.max_rss_mb,
        },
        "per_stream": {},
    }
    raw_streams, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=False, dejitter_timestamps=False)
    sync_streams, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=True, dejitter_timestamps=True)
    by_name_raw = {s["info"]["name"][0]: s for s in raw_streams}
    by_name_sync = {s["info"]["name"][0]: s for s in sync_streams}
    (session_dir,) = [p for p in parent.iterdir() if p.is_dir()]
    # avlab's sync on LabRecorder's own file: the same clock offsets pyxdf sees,
    # so the two synchronization methods are compared on identical input.
    (out / "imported").mkdir(exist_ok=True)
    imported = import_xdf(xdf, out / "imported", overwrite=True)
    with Session.open(imported) as lr_ses:
        for name in names:
            sd = lr_ses.read(name)
            true = truth.match_samples(name, sd.raw_stamps)
            results["per_stream"].setdefault(name, {})["avlab_on_labrecorder_error_ms"] = (
                error_stats(sd.times - true)
            )
    with Session.open(session_dir) as ses:
        for name in names:
            sd = ses.read(name)
            row: dict = results["per_stream"].setdefault(name, {})
            true_av = truth.match_samples(name, sd.raw_stamps)
            row["avlab_loss"] = samples_lost(truth, name, sd.raw_stamps, true_av)
            row["avlab_error_ms"] = error_stats(sd.times - true_av)
            raw = np.asarray(by_name_raw[name]["time_stamps"])
            synced = np.asarray(by_name_sync[name]["time_stamps"])
            true_lr = truth.match_samples(name, raw)
            row["labrecorder_loss"] = samples_lost(truth, name, raw, true_lr)
            row["pyxdf_error_ms"] = error_stats(synced - true_lr)
    write_json(out / "results.json", results)
    print(f"B1/B2 results written to {out / 'results.json'}")


if __name__ == "__main__":
    main()
