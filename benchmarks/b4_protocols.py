"""B4: every shipped protocol, run in full against the simulated lab; nothing may be lost.

For each protocol in ``protocols/``: build its stimuli, then ``avlab run
PROTOCOL --simulate --headless`` (the PsychoPy presenter on a private Xvfb
screen with a PulseAudio null sink, the simulated participant following its
markers, the simulated lab 37 s ahead in a time namespace when possible), and
score the session: samples lost per stream (``avlab inspect``'s definition,
and against the simulator's truth: every sample index between the first and
the last recorded one present), trials completed, markers recorded, dropped
frames, wall time.

    python benchmarks/b4_protocols.py --out bench-out/b4 [--trials N] [--protocol NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
from _common import AVLAB, REPO  # noqa: I001 - benchmarks run as scripts

from avlab.demo import time_namespaces_available
from avlab.session import Session
from avlab.session.summary import summarize


def _truth_lost(folder: Path) -> dict[str, int]:
    """Missing sample indices between the first and last recorded sample, per stream."""
    from avlab.sim.truth import load_truth

    truth = load_truth(folder / "sim_truth.json")
    out = {}
    with Session.open(folder) as s:
        for info in s.streams:
            if info.name not in truth.streams or info.nominal_srate == 0:
                continue
            stamps = s.read(info.name, aligned=False).raw_stamps
            clock = truth.streams[info.name]
            true = truth.match_samples(info.name, stamps)
            if np.isnan(true).any():
                out[info.name] = -1  # unmatched stamps: report, do not hide
                continue
            idx = np.rint((true - clock.segments[0].t0_true) * clock.true_srate).astype(int)
            idx = np.unique(idx)
            out[info.name] = int(idx[-1] - idx[0] + 1 - idx.size)
    return out


def run_protocol(name: str, out: Path, trials: int | None, offset: int) -> dict:
    """Build, run and score one protocol."""
    stim = out / "stimuli" / name
    subprocess.run([*AVLAB, "stimuli", "build", name, "--out", str(stim)], check=True)
    runs = out / "runs" / name
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [*AVLAB, "run", name, str(runs), "--participant", "01", "--session", "01",
           "--simulate", "--headless", "--stimuli", str(stim), "--host-offset", str(offset),
           "--quiet"]  # fmt: skip
    if trials:
        cmd += ["--trials", str(trials)]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    folder = Path(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
    if res.returncode != 0 or folder is None:
        return {"protocol": name, "returncode": res.returncode, "stderr": res.stderr[-2000:]}
    summary = summarize(folder)
    trial_lines = [json.loads(x) for x in (folder / "trials.jsonl").read_text().splitlines() if x]
    dropped = sum(int(t.get("dropped_frames", 0) or 0) for t in trial_lines)
    with Session.open(folder) as s:
        markers = s.markers()
    return {
        "protocol": name,
        "returncode": res.returncode,
        "wall_s": round(wall, 1),
        "folder": str(folder),
        "status": summary.status,
        "trials_completed": sum(t.get("status") == "completed" for t in trial_lines),
        "markers": int(len(markers.times)),
        "dropped_frames": dropped,
        "samples_lost_inspect": {st.name: st.samples_lost for st in summary.streams},
        "samples_lost_truth": _truth_lost(folder),
        "recorded_s": {st.name: round(st.duration_s, 1) for st in summary.streams},
    }


def main() -> None:
    """Run B4 and write ``b4_protocols.json``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out/b4"))
    ap.add_argument("--trials", type=int, default=None, help="limit trials per protocol")
    ap.add_argument("--protocol", action="append", help="only these protocols")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.protocol or sorted(p.stem for p in (REPO / "protocols").glob("*.yaml"))
    offset = 37 if time_namespaces_available() else 0
    results = [run_protocol(n, args.out, args.trials, offset) for n in names]
    (args.out / "b4_protocols.json").write_text(json.dumps(results, indent=1))
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k != "stderr"}))  # noqa: T201


if __name__ == "__main__":
    main()
