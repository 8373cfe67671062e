"""B5: BIDS conversion of a 60-minute session: speed (x real time) and peak RSS.

A 60-minute session (64-channel EEG at 1000 Hz, gaze at 200 Hz, microphone and talker
audio at 48 kHz, a camera video) is written by the offline simulator
(``avlab simulate``), then converted twice, each in its own process, peak RSS read
from ``wait4``:

* ``avlab bids convert`` (everything: EEG, events, eye tracking, audio, video, stimuli);
* "mne-bids alone": the EEG read into a preloaded ``RawArray`` and written with
  ``write_raw_bids(..., allow_preload=True, format="BrainVision")``, the way a user
  without avlab would do it; EEG only.

Both run in the same invocation, one after the other, so the ratio of their times is
comparable even on a noisy machine.

    python benchmarks/b5_bids.py --out bench-out/b5 [--minutes 60] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import AVLAB, wait_usage  # noqa: I001 - benchmarks run as scripts

MNE_BIDS_ALONE = r"""
import sys, warnings
from pathlib import Path
import numpy as np, mne
from mne_bids import BIDSPath, write_raw_bids
from avlab.session import Session
from avlab.bids.timeline import eeg_stream
folder, root = Path(sys.argv[1]), Path(sys.argv[2])
with Session.open(folder) as s:
    info = eeg_stream(s)
    d = s.read(info)
    data = d.data.T.astype(np.float64) * 1e-6
    labels = list(info.channel_labels)
raw = mne.io.RawArray(data, mne.create_info(labels, info.nominal_srate, "eeg"), verbose="ERROR")
del data
raw.info["line_freq"] = 50.0
bp = BIDSPath(subject="01", session="01", task="bench", run="01", datatype="eeg", root=root)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    write_raw_bids(raw, bp, allow_preload=True, format="BrainVision", verbose="ERROR")
"""


def _run(cmd: list[str], log: Path) -> dict:
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        usage = wait_usage(proc, t0)
    if usage.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed (exit {usage.returncode}); see {log}")
    return {"wall_s": usage.wall_s, "cpu_s": usage.cpu_s, "max_rss_mb": usage.max_rss_mb}


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    """Run the benchmark and write ``b5.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/b5"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--keep", action="store_true", help="Reuse an existing simulated session.")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sessions = out / "sessions"
    existing = sorted(sessions.glob("sub-*")) if args.keep and sessions.is_dir() else []
    sim: dict = {}
    if not existing:
        shutil.rmtree(sessions, ignore_errors=True)
        sim = _run(
            [*AVLAB, "simulate", "competing-talkers", str(sessions), "-p", "01", "-s", "01",
             "--min-duration", str(args.minutes * 60), "--eeg-channels", "64",
             "--eeg-rate", "1000", "--video", "--stimuli", str(out / "stimuli")],
            out / "simulate.log",
        )  # fmt: skip
        existing = sorted(sessions.glob("sub-*"))
    session = existing[-1]
    from avlab.bids.timeline import eeg_stream
    from avlab.session import Session

    # Only stream attributes here: this process must stay small, because a child's peak
    # RSS (wait4) starts from the parent's resident size at fork.
    with Session.open(session) as s:
        eeg = eeg_stream(s)
        duration = eeg.n_samples / eeg.nominal_srate
    results: dict = {"session": str(session), "duration_s": duration, "simulate": sim,
                     "session_mb": _du(session)}  # fmt: skip
    for name, cmd in (
        ("avlab", [*AVLAB, "bids", "convert", str(session), "--bids-root",
                   str(out / "bids-avlab"), "--screen-size", "0.531,0.299",
                   "--screen-distance", "0.65"]),
        ("mne_bids_alone", [sys.executable, "-c", MNE_BIDS_ALONE, str(session),
                            str(out / "bids-mne")]),
    ):  # fmt: skip
        shutil.rmtree(out / f"bids-{name.split('_')[0]}", ignore_errors=True)
        r = _run(cmd, out / f"{name}.log")
        r["x_real_time"] = duration / r["wall_s"]
        r["output_mb"] = _du(out / f"bids-{name.split('_')[0]}")
        results[name] = r
        print(f"{name}: {r['wall_s']:.1f} s = {r['x_real_time']:.0f}x real time, "
              f"peak RSS {r['max_rss_mb']:.0f} MB")  # fmt: skip
    v = subprocess.run([*AVLAB, "bids", "validate", str(out / "bids-avlab"), "--json"],
                       capture_output=True, text=True)  # fmt: skip
    try:
        rep = json.loads(v.stdout)
        results["validator"] = {
            "errors": sum(1 for i in rep["issues"] if i["severity"] == "error"),
            "warnings": sum(1 for i in rep["issues"] if i["severity"] == "warning"),
        }
    except (ValueError, KeyError):
        results["validator"] = {"exit": v.returncode, "stderr": v.stderr[-2000:]}
    results["ratio_wall_avlab_over_mne_bids"] = (
        results["avlab"]["wall_s"] / results["mne_bids_alone"]["wall_s"]
    )
    (out / "b5.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
