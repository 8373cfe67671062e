"""B7: speech separation, steering and the beamformer baseline.

Parts (each writes JSON under --out; ``docs/benchmarks.md`` quotes them):

1. ``realspeech``: two-talker mixtures of the recorded utterances training never
   saw (``HELD_OUT_DEFAULT``: spk1/spk2 sentences 5 and 6, 16 kHz), every
   cross-talker pair at SIR −2.5, 0, +2.5 dB, (a) anechoic and (b) in the held-out
   measured room (rir4) with the held-out noise (noise3) at 15 dB SNR. Written
   as ``mixture_<i>.wav``/``source1_<i>.wav``/``source2_<i>.wav`` and scored by
   the real command, ``avlab separate eval``, for both networks; the anechoic set
   also at the networks' own rate (8 kHz), with the ceiling an 8-kHz separator
   has on 16-kHz references (the true talkers through 8 kHz and back).
2. ``speed``: real-time factor and latency of the causal network streamed in
   blocks of 2, 3, 4 and 8 hops (1 and 2 threads) by the ONNX Runtime engine and
   its PyTorch peer (``fused``), of one whole-signal pass of each network, and
   of the MVDR beamformer on a 4-microphone recording, all in this run.
3. ``beamformer``: the held-out pairs placed at ±30° around a bilateral
   hearing-aid array (pyroomacoustics, anechoic and RT60 0.3 s): MVDR and
   delay-and-sum steered to the attended talker's direction (gaze), against the
   network with the separated talker chosen by direction (gaze) or by truth.
4. ``steering``: a simulated BIDS dataset (2 participants × 8 competing-talker
   trials, EEG SNR −40 dB, gaze on the attended face 80 % of the time) through
   ``avlab separate run --steer eeg,gaze,truth``: steering accuracy per window
   set against the EEG decoder's accuracy with clean envelopes on the same
   windows.

Usage: ``python benchmarks/b7_separate.py --out bench-out/b7 [--parts ...]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
os.environ.setdefault("LSLAPICFG", str(REPO / "avlab" / "data" / "lsl" / "loopback.cfg"))
FS = 16000


def _load(name: str, sub: str = "speech") -> np.ndarray:
    x, fs = sf.read(SHARED / sub / f"{name}.wav", dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    return x if fs == FS else resample_poly(x, FS, fs)


def _pairs() -> list[tuple[str, str]]:
    return list(itertools.product(["spk1_snt5", "spk1_snt6"], ["spk2_snt5", "spk2_snt6"]))


def _avlab(*args: str) -> None:
    cmd = [sys.executable, "-m", "avlab", *args]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def realspeech(out: Path) -> dict:
    rir = _load("rir4", "rir")
    rir = rir / np.abs(rir).max()
    noise = _load("noise3", "noise")
    res: dict = {}
    for cond in ("anechoic", "reverb-noise"):
        d = out / "realspeech" / cond
        d.mkdir(parents=True, exist_ok=True)
        i = 0
        for (a, b), sir in itertools.product(_pairs(), (-2.5, 0.0, 2.5)):
            s1, s2 = _load(a), _load(b)
            n = max(s1.size, s2.size)
            s1, s2 = np.pad(s1, (0, n - s1.size)), np.pad(s2, (0, n - s2.size))
            if cond == "reverb-noise":
                s1, s2 = fftconvolve(s1, rir)[:n], fftconvolve(s2, rir)[:n]
            s1 = s1 / np.sqrt(np.mean(s1**2))
            s2 = s2 / np.sqrt(np.mean(s2**2)) * 10 ** (-sir / 20)
            mix = s1 + s2
            if cond == "reverb-noise":
                nz = np.tile(noise, int(np.ceil(n / noise.size)))[:n]
                mix = mix + nz / np.sqrt(np.mean(nz**2)) * np.sqrt(np.mean(mix**2)) * 10 ** (
                    -15 / 20
                )
            g = 0.5 / np.abs(mix).max()
            i += 1
            for name, sig in (("mixture", mix), ("source1", s1), ("source2", s2)):
                sf.write(d / f"{name}_{i:03d}.wav", sig * g, FS, subtype="FLOAT")
        for mode in ("noncausal", "causal"):
            _avlab("separate", "eval", str(d), "--mode", mode, "--overwrite", "-q")
            res[f"{cond}/{mode}"] = json.loads((d / f"eval-{mode}" / "summary.json").read_text())
    res.update(_network_band(out / "realspeech"))
    return res


def _network_band(root: Path) -> dict:
    """The anechoic set at the networks' 8 kHz, and what 8 kHz costs at 16 kHz.

    ``band_ceiling_16k``: SI-SDRi at 16 kHz of the *true* talkers passed through
    8 kHz and back (the inference path's resampler), i.e. the best any 8-kHz
    separator can score on these 16-kHz references. ``anechoic-8k/<mode>``: the
    same mixtures and references resampled to 8 kHz and scored there (the
    WSJ0-2mix "8k" convention).
    """
    from avlab.separate._audio import resample
    from avlab.separate.metrics import si_sdr

    src, dst = root / "anechoic", root / "anechoic-8k"
    dst.mkdir(parents=True, exist_ok=True)
    gains = []
    for mix_path in sorted(src.glob("mixture_*.wav")):
        token = mix_path.stem.split("_", 1)[1]
        mix, fs = sf.read(mix_path, dtype="float64")
        sf.write(dst / mix_path.name, resample(mix, fs, 8000), 8000, subtype="FLOAT")
        for k in (1, 2):
            ref, _ = sf.read(src / f"source{k}_{token}.wav", dtype="float64")
            sf.write(dst / f"source{k}_{token}.wav", resample(ref, fs, 8000), 8000, subtype="FLOAT")
            oracle = resample(resample(ref, fs, 8000), 8000, fs)[: ref.size]
            gains.append(si_sdr(oracle, ref) - si_sdr(mix, ref))
    ceiling = {"mean_si_sdri_db": float(np.mean(gains)), "min_si_sdri_db": float(np.min(gains))}
    res: dict = {"band_ceiling_16k": {**ceiling, "n": len(gains)}}
    for mode in ("noncausal", "causal"):
        _avlab("separate", "eval", str(dst), "--mode", mode, "--overwrite", "-q")
        res[f"anechoic-8k/{mode}"] = json.loads((dst / f"eval-{mode}" / "summary.json").read_text())
    return res


def speed(out: Path) -> dict:
    import torch

    from avlab.separate.beamform import mvdr
    from avlab.separate.inference import Separator
    from avlab.separate.scenes import hearing_aid_array
    from avlab.separate.stream import StreamingSeparator, measure_offline, measure_streaming

    sep = Separator("causal")
    res: dict = {"streaming": [], "offline": {}}
    # the engines side by side, interleaved per block size: ratios within one run
    for threads in (1, 2):
        for mult in (2, 3, 4, 8):
            for engine in ("onnx", "fused"):
                st = StreamingSeparator(
                    sep.net, sep.config, block=sep.config.hop * mult, engine=engine
                )
                res["streaming"].append(
                    measure_streaming(st, seconds=20.0, threads=threads).model_dump()
                )
    for mode in ("causal", "noncausal"):
        s = Separator(mode)  # type: ignore[arg-type]
        for threads in (1, 2):
            res["offline"][f"{mode}/threads-{threads}"] = measure_offline(s.net, 20.0, threads)
    torch.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((4, 20 * FS))
    t0 = time.perf_counter()
    mvdr(x, FS, hearing_aid_array(), 30.0)
    res["mvdr_rtf"] = (time.perf_counter() - t0) / 20.0
    return res


def beamformer(out: Path) -> dict:
    from avlab.separate import metrics
    from avlab.separate.beamform import delay_and_sum, direction_of, mvdr
    from avlab.separate.inference import Separator
    from avlab.separate.scenes import simulate_scene

    sep = Separator("noncausal")
    rows = []
    for rt60 in (None, 0.3):
        for (a, b), att in itertools.product(_pairs(), (0, 1)):
            s1, s2 = _load(a), _load(b)
            n = max(s1.size, s2.size)
            srcs = [np.pad(s1, (0, n - s1.size)), np.pad(s2, (0, n - s2.size))]
            az = [30.0, -30.0]
            sc = simulate_scene(srcs, az, FS, rt60_s=rt60, snr_db=20.0, seed=len(rows))
            anech = simulate_scene(srcs, az, FS, rt60_s=None, snr_db=None, seed=len(rows))
            ref = anech.images[att, 0][: sc.mics.shape[1]]
            ref = np.pad(ref, (0, sc.mics.shape[1] - ref.size))
            mic0 = sc.mics[0]
            sigs = {
                "mic0": mic0,
                "mvdr": mvdr(sc.mics, FS, sc.mic_positions, az[att]),
                "delay_and_sum": delay_and_sum(sc.mics, FS, sc.mic_positions, az[att]),
            }
            talkers = sep.separate(mic0, FS)
            dirs = [direction_of(t, sc.mics, FS, sc.mic_positions) for t in talkers]
            gaze_pick = int(np.argmin([abs(d - az[att]) for d in dirs]))
            true_pick = int(np.argmax([metrics.si_sdr(t, ref) for t in talkers]))
            sigs["network+gaze"] = talkers[gaze_pick]
            sigs["network+truth"] = talkers[true_pick]
            row = {
                "rt60": rt60,
                "pair": [a, b],
                "attended": att,
                "directions": dirs,
                "gaze_correct": gaze_pick == true_pick,
            }
            for k, s in sigs.items():
                row[k] = {
                    "si_sdr": metrics.si_sdr(s, ref),
                    "stoi": metrics.stoi(s, ref, FS),
                    "estoi": metrics.stoi(s, ref, FS, extended=True),
                    "pesq": metrics.pesq_score(s, ref, FS),
                    "srmr": metrics.srmr(s, FS),
                }
            rows.append(row)
            print(
                f"rt60={rt60} {a}+{b} att={att}: "
                + ", ".join(f"{k} {row[k]['si_sdr']:.1f}" for k in sigs),
                flush=True,
            )
    summary = {}
    for rt60 in (None, 0.3):
        sel = [r for r in rows if r["rt60"] == rt60]
        key = "anechoic" if rt60 is None else f"rt60-{rt60}"
        summary[key] = {
            k: {m: float(np.nanmean([r[k][m] for r in sel])) for m in sel[0][k]}
            for k in ("mic0", "mvdr", "delay_and_sum", "network+gaze", "network+truth")
        }
        summary[key]["gaze_selection_accuracy"] = float(np.mean([r["gaze_correct"] for r in sel]))
        summary[key]["n"] = len(sel)
    return {"rows": rows, "summary": summary}


def steering(out: Path) -> dict:
    from avlab.bids.convert import ConvertOptions, convert_sessions
    from avlab.sim.config import AudioConfig, EEGConfig, GazeConfig, SimConfig
    from avlab.sim.offline import simulate_session

    d = out / "steering"
    bids = d / "bids"
    if not bids.is_dir():
        folders = []
        for k in (1, 2):
            cfg = SimConfig(
                seed=k,
                eeg=EEGConfig(snr_db=-40.0),
                gaze=GazeConfig(look_attended=0.8),
                audio=AudioConfig(mic_channels=2),
            )
            folders.append(
                simulate_session(
                    "competing-talkers",
                    d / "sessions",
                    participant=f"0{k}",
                    stimuli_dir=d / "stimuli",
                    max_trials=8,
                    config=cfg,
                    seed=k,
                )
            )
        convert_sessions(
            folders,
            ConvertOptions(bids_root=bids, screen_size_m=(0.531, 0.299), screen_distance_m=0.65),
            progress=False,
        )
    _avlab(
        "separate",
        "run",
        str(bids),
        "--out",
        str(d / "run"),
        "--steer",
        "eeg,gaze,truth",
        "--windows",
        "1,2,5,10,20",
        "--overwrite",
        "-q",
    )
    return json.loads((d / "run" / "summary.json").read_text())


PARTS = {"realspeech": realspeech, "speed": speed, "beamformer": beamformer, "steering": steering}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench-out/b7"))
    ap.add_argument("--parts", default=",".join(PARTS))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.parts.split(","):
        t0 = time.perf_counter()
        res = PARTS[name](args.out)
        res = {
            "part": name,
            "seconds": time.perf_counter() - t0,
            "date": time.strftime("%F"),
            **({"result": res} if not isinstance(res, dict) or "part" in res else res),
        }
        path = args.out / f"b7_{name}.json"
        path.write_text(json.dumps(res, indent=1, default=str))
        print(f"{name}: {res['seconds']:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
