"""Accuracy of avlab.sync on synthetic streams with known clocks, against pyxdf."""

from __future__ import annotations

import time

import numpy as np
import pytest
from synthetic import errors_ms, make_clock, make_stream, pyxdf_align

from avlab.session.summary import samples_lost
from avlab.sync import align_stream, dejitter, fit_clock

# name -> (clock, make_stream options)
CASES = {
    # (a) another host: constant offset, measured by LSL time_correction
    "host_offset": (make_clock("source", srate=500, host_offset_s=37.0), {}),
    # (c) amplifier stamping chunks on arrival: 1 ms jitter, +100 ppm
    "arrival_chunked": (
        make_clock(
            "arrival",
            srate=2048,
            host_offset_s=-23.0,
            rate_ppm=100,
            chunk_size=32,
            jitter_sd_s=1e-3,
            seed=4,
        ),
        {},
    ),
    # per-sample arrival stamps, -100 ppm, two gaps (one too short for pyxdf's
    # 1 s / 500 sample break threshold)
    "arrival_gaps": (
        make_clock(
            "arrival",
            srate=1000,
            host_offset_s=41.0,
            rate_ppm=-100,
            chunk_size=1,
            jitter_sd_s=1e-3,
            seed=5,
        ),
        {"gaps": ((30.0, 100), (70.0, 3000))},
    ),
    # (b) device clock drifting 150 ppm, offsets by time echo: 0.5 ms noise, 5 % outliers
    "device_drift": (
        make_clock("device", srate=200, device_offset_s=-1e4, drift_ppm=150),
        {"offset_every_s": 1.0, "offset_noise_s": 5e-4, "outlier_frac": 0.05},
    ),
    # B2: all at once (37 s host offset, -100 ppm, 1 ms jitter, outlying offsets, a gap)
    "b2_all": (
        make_clock(
            "arrival",
            srate=1000,
            host_offset_s=37.0,
            rate_ppm=-100,
            chunk_size=10,
            jitter_sd_s=1e-3,
            seed=6,
        ),
        {"outlier_frac": 0.1, "gaps": ((50.0, 7),)},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_accuracy_against_truth_and_pyxdf(case: str) -> None:
    clock, opts = CASES[case]
    s = make_stream(clock, duration_s=120.0, **opts)
    al = align_stream(s.stamps, s.clock_offsets, clock.nominal_srate, s.gaps)
    med, p99 = errors_ms(al.times, s.true)
    px_med, px_p99 = errors_ms(pyxdf_align(s), s.true)
    assert med <= 0.1, (med, p99)
    assert p99 <= 1.0, (med, p99)
    # never worse than pyxdf (5 % + 1 us slack for equal cases)
    assert med <= px_med * 1.05 + 1e-3, (med, px_med)
    assert p99 <= px_p99 * 1.05 + 1e-3, (p99, px_p99)
    assert al.quality.n_segments == 1 + s.gaps.shape[0]
    assert samples_lost(al, clock.nominal_srate) == s.lost
    assert al.quality.effective_srate == pytest.approx(clock.true_srate, rel=5e-6)


def test_pyxdf_fails_where_avlab_does_not() -> None:
    # A 100-sample gap below pyxdf's break threshold bends its single fit.
    clock, opts = CASES["arrival_gaps"]
    s = make_stream(clock, duration_s=120.0, **opts)
    _, px_p99 = errors_ms(pyxdf_align(s), s.true)
    _, p99 = errors_ms(align_stream(s.stamps, s.clock_offsets, 1000.0, s.gaps).times, s.true)
    assert px_p99 > 1.0 > 0.1 > p99


def test_gap_found_without_recorded_gaps() -> None:
    clock, _ = CASES["arrival_chunked"]
    s = make_stream(clock, duration_s=60.0, gaps=((20.0, 500),))
    al = align_stream(s.stamps, s.clock_offsets, clock.nominal_srate, None)
    assert al.quality.n_segments == 2
    assert samples_lost(al, clock.nominal_srate) == 500


def test_fit_clock_degenerate_cases() -> None:
    none = fit_clock(np.zeros(0), np.zeros(0))
    assert (none.method, none.n, none.has_offsets) == ("none", 0, False)
    assert none.to_recorder(np.array([5.0]))[0] == 5.0
    one = fit_clock(np.array([100.0]), np.array([-37.0]))
    assert one.method == "constant"
    assert one.to_recorder(np.array([200.0]))[0] == pytest.approx(163.0)
    with pytest.raises(ValueError, match="method must be"):
        fit_clock(np.zeros(3), np.zeros(3), method="magic")
    with pytest.raises(ValueError, match="differ in shape"):
        fit_clock(np.zeros(3), np.zeros(2))


def test_fit_clock_robust_to_outliers() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 600.0, 5.0) + 1e5
    y = 2.5 - 80e-6 * (t - 1e5) + rng.normal(0, 1e-4, t.size)
    bad = rng.random(t.size) < 0.2
    y[bad] += rng.choice([-1.0, 1.0], bad.sum()) * rng.uniform(0.01, 1.0, bad.sum())
    fit = fit_clock(t, y)
    assert fit.drift_ppm == pytest.approx(-80.0, abs=1.0)
    assert abs(fit.offset(1e5) - 2.5) < 1e-4
    assert fit.n_outliers >= bad.sum() - 2
    ols = fit_clock(t, y, method="ols")
    assert abs(ols.drift_ppm + 80.0) > 5 * abs(fit.drift_ppm + 80.0)


def test_dejitter_two_million_samples_quickly() -> None:
    clock = make_clock(
        "arrival", srate=2048, host_offset_s=0.0, rate_ppm=60, chunk_size=64, jitter_sd_s=1e-3
    )
    s = make_stream(clock, duration_s=1000.0, gaps=((500.0, 10),))
    assert s.stamps.size >= 2_000_000
    t0 = time.perf_counter()
    dj = dejitter(s.stamps, 2048.0, breaks=s.gaps[:, 0].astype(int))
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0  # about 0.5 s alone on one core; the machine is shared
    err = np.abs(dj.times - s.true - np.median(dj.times - s.true)) * 1e3
    assert np.percentile(err, 99) < 0.05
    assert dj.n_segments == 2


def test_dejitter_rejects_bad_rate() -> None:
    with pytest.raises(ValueError, match="nominal_srate must be > 0"):
        dejitter(np.arange(10.0), 0.0)
