"""Steering decisions on signals with a known answer (no network involved)."""

from __future__ import annotations

import numpy as np
import pytest

from avlab.decode.base import window_bounds
from avlab.separate.steer import (
    decoder_correct,
    eeg_choices,
    gaze_choices,
    output_sides,
    stitch,
    truth_labels,
    window_pearson,
)

FS = 64.0


def _envs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.convolve(rng.standard_normal(n), np.ones(8) / 8, "same") for _ in range(2)])


def test_window_pearson_matches_numpy() -> None:
    x, y = _envs(640)
    b = window_bounds(640, FS, 2.0)
    r = window_pearson(x, y, b)
    for (a, e), val in zip(b, r, strict=True):
        assert val == pytest.approx(np.corrcoef(x[a:e], y[a:e])[0, 1], abs=1e-12)
    assert window_pearson(np.ones(640), y, b).tolist() == [0.0] * len(b)


def test_truth_label_follows_the_attended_envelope() -> None:
    clean = _envs(1280)
    assert truth_labels(clean + 0.3 * _envs(1280, 1), clean) == 0
    assert truth_labels(clean[::-1] + 0.3 * _envs(1280, 2), clean) == 1


def test_eeg_choice_and_decoder_on_the_same_windows() -> None:
    clean = _envs(64 * 60)
    rng = np.random.default_rng(3)
    recon = clean[0] + 0.5 * rng.standard_normal(clean.shape[1])  # follows the attended
    b = window_bounds(clean.shape[1], FS, 5.0)
    separated = clean[::-1] + 0.2 * _envs(clean.shape[1], 4)  # attended is output 1
    assert (eeg_choices(recon, separated, b) == 1).mean() == 1.0
    assert decoder_correct(recon, clean, b).mean() == 1.0


def test_output_sides_are_the_microphone_level_difference() -> None:
    rng = np.random.default_rng(5)
    left, right = rng.standard_normal((2, 16000))
    mics = np.stack([0.45 * left + 0.2 * right, 0.2 * left + 0.45 * right])
    diff = output_sides(np.stack([right, left]), mics)
    assert diff[1] == pytest.approx(20 * np.log10(0.45 / 0.2), abs=0.3)  # left: +7.04 dB
    assert diff[0] == pytest.approx(-20 * np.log10(0.45 / 0.2), abs=0.3)


def test_gaze_choice_maps_the_face_side_to_the_output() -> None:
    n = 64 * 20
    b = window_bounds(n, FS, 5.0)
    gaze = np.zeros((2, n))
    gaze[0, :640] = 1.0  # first 10 s on the attended face, then on the other one
    gaze[1, 640:] = 1.0
    level = np.array([-6.0, 6.0])  # output 1 is on the left
    # attended face on the left, the other on the right
    assert gaze_choices(gaze, (True, False), level, b).tolist() == [1, 1, 0, 0]
    assert gaze_choices(gaze, (False, True), level, b).tolist() == [0, 0, 1, 1]
    assert gaze_choices(np.zeros((2, n)), (True, False), level, b).tolist() == [-1] * 4


def test_stitch_switches_with_a_short_crossfade() -> None:
    t = np.stack([np.full(1000, 1.0), np.full(1000, -1.0)])
    y = stitch(t, np.array([0, 1]), window=500, fade=20)
    assert np.allclose(y[:480], 1.0, atol=1e-12) and np.allclose(y[520:], -1.0, atol=1e-12)
    assert np.abs(np.diff(y)).max() < 0.25  # a 20-sample fade between +1 and -1, no click
    assert np.allclose(stitch(t, np.array([1, -1]), 500, 0), -1.0)  # -1 keeps the last choice
