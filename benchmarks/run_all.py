"""Run every benchmark (``make bench``); results land in --out as JSON.

B1+B2 record for 10 minutes; B3 kills the recorder 20 times; B4 runs every
protocol in full against the simulated lab (about 25 minutes); B5 converts a
60-minute simulated session to BIDS beside mne-bids alone (about 10 minutes). B6
times the linear decoder beside mtrf on 18 simulated subjects (about 20 minutes),
and B6b decodes simulated datasets at three SNRs with every method (about 40
minutes). B7 scores the shipped separation networks on held-out real speech, times
them, runs the beamformer baseline and steers a simulated dataset (about 20
minutes); ``--train-separation`` first retrains them (75 min). About two and a half
hours.
The figures are copied into docs/benchmarks.md by hand, with the date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--duration", type=float, default=600.0, help="B1/B2 recording length (s)")
    ap.add_argument("--reps", type=int, default=20, help="B3 repetitions")
    ap.add_argument(
        "--train-separation",
        action="store_true",
        help="also retrain and reinstall the separation networks (B7-train, 75 min)",
    )
    args = ap.parse_args()
    py = sys.executable
    subprocess.run(
        [
            py,
            str(HERE / "b1_b2_load_sync.py"),
            "--duration",
            str(args.duration),
            "--out",
            str(args.out / "b1"),
        ],
        check=True,
    )
    subprocess.run(
        [py, str(HERE / "b3_crash.py"), "--reps", str(args.reps), "--out", str(args.out / "b3")],
        check=True,
    )
    subprocess.run([py, str(HERE / "b4_protocols.py"), "--out", str(args.out / "b4")], check=True)
    subprocess.run([py, str(HERE / "b5_bids.py"), "--out", str(args.out / "b5")], check=True)
    subprocess.run([py, str(HERE / "b6_decode.py"), "--out", str(args.out / "b6")], check=True)
    subprocess.run([py, str(HERE / "b6_accuracy.py"), "--out", str(args.out / "b6acc")], check=True)
    if args.train_separation:
        subprocess.run([py, str(HERE / "b7_train.py"), "--out", str(args.out / "b7" / "train")],
                       check=True)  # fmt: skip
    subprocess.run([py, str(HERE / "b7_separate.py"), "--out", str(args.out / "b7")], check=True)
    subprocess.run([py, str(HERE / "summarize.py"), str(args.out)], check=True)


if __name__ == "__main__":
    main()
