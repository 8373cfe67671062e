"""B6b: decoding accuracy on simulated datasets at three EEG SNRs (issue 6 acceptance).

For each SNR, ``avlab simulate`` writes SUBJECTS competing-talkers sessions of
MINUTES each (32 channels at 250 Hz; gaze with glances at the other talker,
``--look-attended``), ``avlab bids convert`` makes one BIDS dataset, and
``avlab decode --method ...`` evaluates every method with leave-one-trial-out
(trials sharing stimuli held out together), the null control (10 label shuffles;
2 for the CNN, whose network is retrained per shuffle) and MESD. The
per-method accuracy against window length and the MESD land in ``--out`` as
JSON plus each dataset's ``report.html``.

    python benchmarks/b6_accuracy.py --out bench-out/b6acc
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import AVLAB, REPO

SNRS = (-35.0, -40.0, -45.0)


def _run(args: list[str], log: Path) -> float:
    t0 = time.monotonic()
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(args)}\n")
        fh.flush()
        subprocess.run(args, check=True, stdout=fh, stderr=subprocess.STDOUT)
    return time.monotonic() - t0


def make_dataset(root: Path, snr: float, args: argparse.Namespace, log: Path) -> Path:
    """Simulate and convert one dataset; reuse it when it is already there."""
    bids = root / "bids"
    if (bids / "dataset_description.json").is_file():
        return bids
    stim = args.stimuli
    if stim is None:
        stim = root.parent / "stimuli" / "competing-talkers"
        if not (stim / "manifest.json").is_file() and not any(stim.glob("*.wav")):
            _run([*AVLAB, "stimuli", "build", "competing-talkers", "--out", str(stim.parent)], log)
    sessions = root / "sessions"
    for k in range(1, args.subjects + 1):
        p = f"{k:02d}"
        if any(sessions.glob(f"sub-{p}_*")):
            continue
        _run([*AVLAB, "simulate", "competing-talkers", str(sessions), "-p", p, "--seed", str(k),
              "--snr-db", str(snr), "--eeg-channels", "32", "--eeg-rate", "250", "--no-audio",
              "--min-duration", str(args.minutes * 60), "--look-attended",
              str(args.look_attended), "--stimuli", str(stim), "-q"], log)  # fmt: skip
    folders = sorted(str(f) for f in sessions.glob("sub-*") if f.is_dir())
    _run([*AVLAB, "bids", "convert", *folders, "--bids-root", str(bids),
          "--screen-size", "0.531,0.299", "--screen-distance", "0.65"], log)  # fmt: skip
    return bids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out/b6acc"))
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=16.0)
    ap.add_argument("--look-attended", type=float, default=0.7)
    ap.add_argument("--methods", default="linear,trf,cca,cnn,gaze,fusion")
    ap.add_argument("--snrs", default=",".join(f"{s:g}" for s in SNRS))
    ap.add_argument("--null-shuffles", type=int, default=10)
    ap.add_argument("--cnn-null-shuffles", type=int, default=2)
    ap.add_argument("--cnn-epochs", type=int, default=10)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--stimuli", type=Path, default=None, help="built competing-talkers stimuli")
    ap.add_argument("--data-only", action="store_true", help="only simulate and convert")
    ap.add_argument("--reuse", action="store_true", help="keep decodes already done")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "b6acc.log"
    results = {"command": " ".join(sys.argv), "config": vars(args) | {"out": str(args.out)},
               "snr": {}}  # fmt: skip
    results["config"]["stimuli"] = str(args.stimuli)
    for snr in (float(s) for s in args.snrs.split(",")):
        root = args.out / f"snr{snr:g}"
        t_data = time.monotonic()
        bids = make_dataset(root, snr, args, log)
        t_data = time.monotonic() - t_data
        if args.data_only:
            continue
        entry: dict = {"data_s": t_data, "decode_s": {}, "summary": {}}
        # the CNN's null control refits the network per shuffle: fewer repetitions
        names = args.methods.split(",")
        runs = {"decode": ",".join(m for m in names if m != "cnn")}
        if "cnn" in names:
            runs["decode-cnn"] = "cnn"
        for sub, methods in runs.items():
            if not methods:
                continue
            n_null = args.cnn_null_shuffles if methods == "cnn" else args.null_shuffles
            dec = root / sub
            if args.reuse and (dec / "b6_wall_s.json").is_file():
                entry["decode_s"][methods] = json.loads((dec / "b6_wall_s.json").read_text())
                entry["summary"][methods] = json.loads((dec / "summary.json").read_text())
                continue
            wall = _run([*AVLAB, "decode", str(bids), "--out", str(dec), "--method", methods,
                         "--null-shuffles", str(n_null), "--cnn-epochs", str(args.cnn_epochs),
                         "--n-jobs", str(args.n_jobs), "-q"], log)  # fmt: skip
            entry["decode_s"][methods] = wall
            (dec / "b6_wall_s.json").write_text(json.dumps(wall))
            entry["summary"][methods] = json.loads((dec / "summary.json").read_text())
        results["snr"][f"{snr:g}"] = entry
        (args.out / "b6_accuracy.json").write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps({k: v["decode_s"] for k, v in results["snr"].items()}))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
