"""B7-train: train both shipped separation networks on this CPU and install them.

Runs ``avlab separate train`` for the causal and the non-causal network at the
same time (one torch thread each, 2 cores), on the synthesized corpus plus the
recorded speech, rooms and noise of ``../shared/data`` (held-out files excluded,
see ``avlab.separate.corpus.HELD_OUT_DEFAULT``), then copies the weights, their
``.json`` (architecture, command, corpus manifest, curve), ``-curve.csv`` and
``-curve.svg`` into ``avlab/data/separate/``.

Usage: ``python benchmarks/b7_train.py --out bench-out/b7/train --minutes 75``
(``--no-install`` keeps the shipped weights). The shipped weights of 2026-11-24 were
trained in two legs because the machine was shared at first: 17-24 min, then
continued with ``--init`` for 75 min (the curve in the .json covers both).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SHIP = REPO / "avlab" / "data" / "separate"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out/b7/train"))
    ap.add_argument("--minutes", type=float, default=75.0)
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args()
    procs = []
    for mode in ("causal", "noncausal"):
        cmd = [
            sys.executable,
            "-m",
            "avlab",
            "separate",
            "train",
            str(args.out),
            "--mode",
            mode,
            "--minutes",
            str(args.minutes),
            "--threads",
            "1",
            "--speech",
            str(SHARED / "speech"),
            "--rir",
            str(SHARED / "rir"),
            "--noise",
            str(SHARED / "noise"),
            "--cache",
            str(args.out / "tts-cache"),
        ]
        print("+", " ".join(cmd[2:]), flush=True)
        procs.append(subprocess.Popen(cmd))
    if any(p.wait() for p in procs):
        sys.exit("training failed")
    if not args.no_install:
        for mode in ("causal", "noncausal"):
            for suffix in (".pt", ".json", "-curve.csv", "-curve.svg"):
                shutil.copy2(args.out / f"{mode}{suffix}", SHIP / f"{mode}{suffix}")
        print(f"installed into {SHIP}")


if __name__ == "__main__":
    main()
