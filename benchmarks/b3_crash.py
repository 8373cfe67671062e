"""B3 crash: kill -9 the recorder at a random moment, 20 times.

Each repetition starts ``avlab record`` on the simulated lab's B1 load, kills it
with SIGKILL after a random 3-12 s, then checks that the session opens as it is
(SWMR read) and after ``avlab recover``, and measures per stream the seconds
lost: the true time of the kill minus the true time of the last recorded sample.

Usage: python benchmarks/b3_crash.py --reps 20 --out bench-out/b3
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pylsl
from _common import AVLAB, start_sim, wait_streams, wait_usage, write_json

from avlab.session import Session
from avlab.sim.truth import load_truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench-out/b3"))
    ap.add_argument("--eeg-channels", type=int, default=256)
    ap.add_argument("--eeg-rate", type=float, default=2048.0)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    truth_path = (out / "sim_truth.json").resolve()
    truth_path.unlink(missing_ok=True)
    prefix = f"B3{int(time.time()) % 100000}"
    sim = start_sim(
        [
            "--seed",
            "3",
            "--duration",
            str(args.reps * 25 + 60),
            "--eeg-channels",
            str(args.eeg_channels),
            "--eeg-rate",
            str(args.eeg_rate),
            "--prefix",
            prefix,
            "--truth",
            str(truth_path),
        ],
        out / "sim.log",
    )
    started = time.monotonic()
    reps = []
    try:
        deadline = time.monotonic() + 30
        while not truth_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        names = sorted(load_truth(truth_path).streams)
        wait_streams(names)
        for i in range(args.reps):
            parent = out / f"rep{i:02d}"
            shutil.rmtree(parent, ignore_errors=True)
            parent.mkdir()
            cmd = [*AVLAB, "record", str(parent), "--duration", "60", "--quiet"]
            for n in names:
                cmd += ["--stream", n]
            rec = subprocess.Popen(
                cmd, stdout=open(out / f"rep{i:02d}.log", "w"), stderr=subprocess.STDOUT
            )
            delay = rng.uniform(3.0, 12.0)
            time.sleep(delay)
            t_kill = pylsl.local_clock()
            os.kill(rec.pid, signal.SIGKILL)
            rec.wait()
            row: dict = {"rep": i, "killed_after_s": delay}
            (ses_dir,) = [p for p in parent.iterdir() if p.is_dir()]
            truth = load_truth(truth_path)
            try:
                with Session.open(ses_dir) as ses:
                    row["opens_as_is"] = True
                    lost = {}
                    for name in names:
                        clock = truth.streams[name]
                        sd = ses.read(name, aligned=False)
                        if clock.nominal_srate == 0 or sd.raw_stamps.size == 0:
                            continue
                        true_last = np.nanmax(truth.match_samples(name, sd.raw_stamps[-50:]))
                        lost[name] = float(t_kill - true_last)
                    row["seconds_lost"] = lost
            except Exception as exc:  # noqa: BLE001 - a benchmark records every failure
                row["opens_as_is"] = False
                row["open_error"] = str(exc)
            rc = subprocess.run([*AVLAB, "recover", str(ses_dir)], capture_output=True, text=True)
            row["recover_rc"] = rc.returncode
            try:
                with Session.open(ses_dir) as ses:
                    row["opens_after_recover"] = bool(ses.streams)
            except Exception as exc:  # noqa: BLE001
                row["opens_after_recover"] = False
                row["recover_error"] = str(exc)
            reps.append(row)
            print(f"rep {i}: {row}", flush=True)
    finally:
        sim.send_signal(signal.SIGTERM)
        wait_usage(sim, started)
    per_stream: dict = {}
    for name in names:
        vals = [r["seconds_lost"][name] for r in reps if name in r.get("seconds_lost", {})]
        if vals:
            per_stream[name] = {
                "median_s": float(np.median(vals)),
                "max_s": float(np.max(vals)),
                "n": len(vals),
            }
    summary = {
        "reps": len(reps),
        "opened_as_is": sum(r["opens_as_is"] for r in reps),
        "opened_after_recover": sum(r["opens_after_recover"] for r in reps),
        "seconds_lost": per_stream,
        "runs": reps,
    }
    write_json(out / "results.json", summary)
    print(f"B3 results written to {out / 'results.json'}")


if __name__ == "__main__":
    main()
