"""B6: speed of the linear backward decoder, side by side with mtrf on the same data and folds.

Per subject: ``--trials`` trials of ``--minutes`` minutes in total, ``--channels`` EEG
channels at 64 Hz, lags 0–250 ms (17), 5 regularization values. The data are seeded,
random but structured (EEG = spatial pattern × attended envelope convolved with a
P1/N1/P2 kernel + spatially mixed band-limited noise, demeaned per trial), generated
per subject inside the worker that uses them (never all subjects in memory).

Variants timed:

* ``avlab_loto``: leave-one-trial-out over the 5 λ, exactly what mtrf
  ``TRF.train(..., regularization=[5 values], k=-1)`` does (mean held-out r per λ, then
  the best λ), from additive per-trial statistics; 2 worker processes, one BLAS thread
  each (``threadpoolctl``). The λ grid is mtrf's, mapped by ``λ_ours = n_train·fs·λ_mtrf``.
* ``avlab_nested``: outer leave-one-trial-out, α chosen per outer fold by an inner
  leave-one-trial-out (the all−{k, j} pair trick), relative α grid 1e-3…10.
* ``mtrf``: ``mtrf.model.TRF(direction=-1).train(..., k=-1)`` on the first
  ``--mtrf-subjects`` subjects, in the same pool of 2 worker processes with one BLAS
  thread each (the same resources as avlab; wall includes data generation for both).

Checks: for the subjects run by both, the same λ is chosen and the mean r per λ agree.

    python benchmarks/b6_decode.py --out bench-out/b6 [--subjects 18] [--mtrf-subjects 18]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _common import write_json  # noqa: I001 - benchmarks run as scripts
from scipy import signal

FS = 64.0
TMIN, TMAX = 0.0, 0.25
#: mtrf's λ grid (units of its trial-averaged covariances); ours is n_train·fs times it.
MTRF_LAMBDAS = (0.3, 3.0, 30.0, 300.0, 3000.0)
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def make_subject(
    seed: int, minutes: float, n_ch: int, n_trials: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Seeded structured trials: EEG (C, T), attended and unattended envelopes (T,)."""
    rng = np.random.default_rng(seed)
    n_t = int(round(minutes * 60 * FS / n_trials))
    b, a = signal.butter(2, 8.0, fs=FS)
    lags = np.arange(17) / FS
    kern = (
        0.5 * np.exp(-0.5 * ((lags - 0.05) / 0.015) ** 2)
        - np.exp(-0.5 * ((lags - 0.10) / 0.02) ** 2)
        + 0.7 * np.exp(-0.5 * ((lags - 0.18) / 0.03) ** 2)
    )
    pattern = rng.standard_normal(n_ch)
    mix = rng.standard_normal((n_ch, 16)) / 4.0
    eeg, att, una = [], [], []
    for _ in range(n_trials):
        env = [np.abs(signal.lfilter(b, a, rng.standard_normal(n_t))) for _ in range(2)]
        env = [e / e.std() for e in env]
        resp = np.convolve(env[0] - env[0].mean(), kern)[:n_t]
        noise = mix @ signal.lfilter(b, a, rng.standard_normal((16, n_t)), axis=1)
        x = 0.1 * np.outer(pattern, resp) + noise + 0.5 * rng.standard_normal((n_ch, n_t))
        x -= x.mean(axis=1, keepdims=True)
        eeg.append(np.ascontiguousarray(x))
        att.append(env[0])
        una.append(env[1])
    return eeg, att, una


def _avlab_subject(args: tuple[int, float, int, int, bool]) -> dict:
    """One subject in a worker: stats, then LOTO over λ (or nested); one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from avlab.decode._lagstats import (
        lag_shifts,
        loo_scores,
        nested_loo,
        r_from_stats,
        solve,
        sum_stats,
        trial_stats,
    )

    seed, minutes, n_ch, n_trials, nested = args
    with threadpool_limits(1):
        t0, c0 = time.perf_counter(), time.process_time()
        eeg, att, una = make_subject(seed, minutes, n_ch, n_trials)
        t1, c1 = time.perf_counter(), time.process_time()
        sh = lag_shifts(TMIN, TMAX, FS)
        stats = [
            trial_stats(x, np.stack([a, u]), sh) for x, a, u in zip(eeg, att, una, strict=True)
        ]
        del eeg

        def score(sol, test) -> float:
            return float(r_from_stats(sol, test)[0, 0])

        out: dict = {"subject": seed}
        if nested:
            res = nested_loo(stats, list(ALPHAS), score, targets=[0])
            r = [
                r_from_stats(s, stats[u[0]])[0]
                for s, u in zip(res.solutions, res.units, strict=True)
            ]
            out["alphas"] = res.alphas.tolist()
            out["r_att"] = float(np.mean([x[0] for x in r]))
            out["accuracy_trial"] = float(np.mean([x[0] > x[1] for x in r]))
        else:
            lams = [(n_trials - 1) * FS * lam for lam in MTRF_LAMBDAS]
            total = sum_stats(stats)
            per = loo_scores(stats, lams, score, targets=[0], absolute=True, total=total)
            best = int(np.argmax(per.mean(axis=0)))
            solve(total, [lams[best]], targets=[0], absolute=True)  # final fit, as mtrf
            out["metric"] = per.mean(axis=0).tolist()
            out["best_lambda_mtrf"] = MTRF_LAMBDAS[best]
        t2, c2 = time.perf_counter(), time.process_time()
    out.update(gen_s=t1 - t0, compute_s=t2 - t1, cpu_s=(c2 - c1) + (c1 - c0))
    return out


def run_avlab(subjects: int, minutes: float, n_ch: int, n_trials: int, nested: bool) -> dict:
    """All subjects through a pool of 2 worker processes; wall and CPU time."""
    t0 = time.perf_counter()
    jobs = [(s, minutes, n_ch, n_trials, nested) for s in range(subjects)]
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(_avlab_subject, jobs))
    wall = time.perf_counter() - t0
    gen = sum(r["gen_s"] for r in rows)
    return {
        "wall_s": wall,
        "wall_minus_data_generation_s": wall - gen / 2,
        "data_generation_s_total": gen,
        "compute_s_total": sum(r["compute_s"] for r in rows),
        "cpu_s_total": sum(r["cpu_s"] for r in rows),
        "subjects": rows,
    }


def _mtrf_subject(args: tuple[int, float, int, int]) -> dict:
    """One subject through mtrf in a worker process with one BLAS thread."""
    from mtrf.model import TRF
    from threadpoolctl import threadpool_limits

    s, minutes, n_ch, n_trials = args
    with threadpool_limits(1):
        eeg, att, _ = make_subject(s, minutes, n_ch, n_trials)
        t0, c0 = time.perf_counter(), time.process_time()
        trf = TRF(direction=-1)
        with warnings.catch_warnings():
            # mtrf warns about its own defaults; nothing of ours
            warnings.simplefilter("ignore", UserWarning)
            metric = trf.train(
                [a[:, None] for a in att],
                [x.T for x in eeg],
                FS,
                TMIN,
                TMAX,
                list(MTRF_LAMBDAS),
                k=-1,
                verbose=False,
            )
        t1, c1 = time.perf_counter(), time.process_time()
    metric = np.asarray(metric, dtype=np.float64).ravel()
    print(f"mtrf subject {s}: {t1 - t0:.1f} s", flush=True)
    return {
        "subject": s,
        "metric": metric.tolist(),
        "best_lambda_mtrf": MTRF_LAMBDAS[int(np.argmax(metric))],
        "wall_s": t1 - t0,
        "cpu_s": c1 - c0,
    }


def run_mtrf(subjects: int, minutes: float, n_ch: int, n_trials: int) -> dict:
    """mtrf ``TRF.train(..., regularization=[5], k=-1)`` per subject, same pool as avlab."""
    t0 = time.perf_counter()
    jobs = [(s, minutes, n_ch, n_trials) for s in range(subjects)]
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(_mtrf_subject, jobs))
    return {
        "wall_s": time.perf_counter() - t0,
        "compute_s_total": sum(r["wall_s"] for r in rows),
        "cpu_s_total": sum(r["cpu_s"] for r in rows),
        "subjects": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/b6_decode"))
    ap.add_argument("--subjects", type=int, default=18)
    ap.add_argument("--minutes", type=float, default=50.0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--mtrf-subjects", type=int, default=18)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    size = (args.minutes, args.channels, args.trials)

    loto = run_avlab(args.subjects, *size, nested=False)
    print(
        f"avlab LOTO x 5 lambda, {args.subjects} subjects: {loto['wall_s']:.1f} s wall", flush=True
    )
    nested = run_avlab(args.subjects, *size, nested=True)
    print(f"avlab nested, {args.subjects} subjects: {nested['wall_s']:.1f} s wall", flush=True)
    partial = {"benchmark": "b6_decode", "avlab_loto": loto, "avlab_nested": nested, "mtrf": None}
    write_json(args.out / "b6_decode.json", partial)  # kept if mtrf is interrupted
    n_m = min(args.mtrf_subjects, args.subjects)
    mtrf = run_mtrf(n_m, *size) if n_m > 0 else None

    agree = None
    if mtrf is not None:
        ours = loto["subjects"][:n_m]
        dr = [
            float(np.max(np.abs(np.subtract(a["metric"], b["metric"]))))
            for a, b in zip(ours, mtrf["subjects"], strict=True)
        ]
        agree = {
            "subjects": n_m,
            "same_lambda": all(
                a["best_lambda_mtrf"] == b["best_lambda_mtrf"]
                for a, b in zip(ours, mtrf["subjects"], strict=True)
            ),
            "max_abs_dr": max(dr),
            "avlab_loto_wall_s_same_subjects_est": loto["wall_s"] * n_m / args.subjects,
            "wall_ratio_avlab_over_mtrf": loto["wall_s"] * n_m / args.subjects / mtrf["wall_s"],
            "compute_ratio_avlab_over_mtrf": (
                sum(r["compute_s"] for r in ours) / mtrf["compute_s_total"]
            ),
        }
    result = {
        "benchmark": "b6_decode",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "size": {
            "subjects": args.subjects,
            "minutes_per_subject": args.minutes,
            "channels": args.channels,
            "trials": args.trials,
            "sfreq": FS,
            "lags_s": [TMIN, TMAX],
            "mtrf_lambdas": MTRF_LAMBDAS,
            "alphas_nested": ALPHAS,
        },
        "avlab_loto": loto,
        "avlab_nested": nested,
        "mtrf": mtrf,
        "agreement": agree,
    }
    write_json(args.out / "b6_decode.json", result)
    print(f"wrote {args.out / 'b6_decode.json'}")


if __name__ == "__main__":
    main()
