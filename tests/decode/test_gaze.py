from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone

from avlab.decode.base import DecodeError
from avlab.decode.gaze import TIE_SCORE, GazeDecoder, gaze_window_scores

SFREQ = 32.0


def look_gaze(
    rng: np.random.Generator, n_trials: int, duration_s: float, p_away: float, fix_s: float
) -> list[np.ndarray]:
    """Gaze in fixations of ``fix_s``: on the attended face, else (p_away) on the other one."""
    n_fix = int(round(duration_s / fix_s))
    width = int(round(fix_s * SFREQ))
    out = []
    for _ in range(n_trials):
        away = rng.random(n_fix) < p_away
        on_b = np.repeat(away, width).astype(float)
        out.append(np.stack([1.0 - on_b, on_b]))
    return out


def expected_accuracy(m: int, p: float) -> float:
    """Majority of m fixations on the attended face, ties counted half."""
    pk = [math.comb(m, k) * p**k * (1 - p) ** (m - k) for k in range(m + 1)]
    return sum(pk[k] for k in range(m + 1) if 2 * k > m) + 0.5 * sum(
        pk[k] for k in range(m + 1) if 2 * k == m
    )


def envs(gaze: list[np.ndarray]) -> list[np.ndarray]:
    return [np.zeros(g.shape[1]) for g in gaze]


@pytest.mark.parametrize(("p_away", "window_s"), [(0.3, 2.0), (0.3, 5.0), (0.4, 1.0)])
def test_accuracy_matches_known_look_away(p_away: float, window_s: float) -> None:
    rng = np.random.default_rng(1)
    fix_s = 0.5
    gaze = look_gaze(rng, 40, 60.0, p_away, fix_s)
    dec = GazeDecoder(sfreq=SFREQ).fit(None, envs(gaze), gaze=gaze)
    acc = dec.score(None, envs(gaze), envs(gaze), window_s=window_s, gaze=gaze)
    n = 40 * int(60.0 / window_s)
    want = expected_accuracy(int(window_s / fix_s), 1 - p_away)
    assert abs(acc - want) < 3 * math.sqrt(want * (1 - want) / n) + 1e-9


def test_scores_ignore_nan_and_swap_negates() -> None:
    g = np.full((2, 64), np.nan)
    g[0, :16] = 1.0  # 16 valid samples on face a
    g[1, :16] = 0.0
    g[0, 16:24] = 0.0  # 8 valid samples on face b
    g[1, 16:24] = 1.0
    g[0, 24:32] = 0.0  # 8 valid samples on neither face
    g[1, 24:32] = 0.0
    s = gaze_window_scores(g, SFREQ, 2.0)
    assert s.shape == (1,)
    assert s[0] == pytest.approx((16 - 8) / 32)
    assert gaze_window_scores(g[::-1], SFREQ, 2.0)[0] == pytest.approx(-s[0])
    # windows: whole ones from the start, remainder dropped
    assert gaze_window_scores(g, SFREQ, 0.5).shape == (4,)
    assert gaze_window_scores(g, SFREQ, 3.0).shape == (0,)


def test_ties_are_tiny_seeded_and_unbiased() -> None:
    gaze = [np.zeros((2, 32 * 100)) for _ in range(20)]  # never on a face
    gaze[0][:, :32] = np.nan  # no valid sample at all: also a tie
    dec = GazeDecoder(sfreq=SFREQ, random_state=3)
    s = np.concatenate(dec.decision_function(None, envs(gaze), envs(gaze), window_s=1.0, gaze=gaze))
    assert s.size == 2000
    assert np.all(np.abs(s) == TIE_SCORE)
    frac = np.mean(s > 0)
    assert abs(frac - 0.5) < 3 * math.sqrt(0.25 / s.size)
    again = np.concatenate(
        dec.decision_function(None, envs(gaze), envs(gaze), window_s=1.0, gaze=gaze)
    )
    np.testing.assert_array_equal(s, again)
    other = GazeDecoder(sfreq=SFREQ, random_state=4)
    s4 = np.concatenate(
        other.decision_function(None, envs(gaze), envs(gaze), window_s=1.0, gaze=gaze)
    )
    assert np.mean(s4 != s) > 0.3
    # a real score, however small, is never touched by the tie breaking
    g = np.zeros((2, 320))
    g[0, 5] = 1.0
    assert gaze_window_scores(g, SFREQ, 10.0)[0] == pytest.approx(1 / 320)


def test_params_clone_and_state() -> None:
    dec = GazeDecoder(sfreq=128.0, random_state=7)
    assert dec.get_params() == {"sfreq": 128.0, "random_state": 7}
    c = clone(dec)
    assert c.get_params() == dec.get_params()
    c.set_params(random_state=1)
    assert c.random_state == 1
    assert dec._state_arrays() == {}
    c._set_state_arrays({})
    assert c.fitted_
    assert not GazeDecoder.uses_eeg and GazeDecoder.uses_gaze


def test_bad_input_raises() -> None:
    dec = GazeDecoder()
    with pytest.raises(DecodeError, match="got no gaze"):
        dec.fit(None, [np.zeros(10)])
    with pytest.raises(DecodeError, match=r"not \(2, n_times\)"):
        dec.fit(None, [np.zeros(10)], gaze=[np.zeros((3, 10))])
    with pytest.raises(DecodeError, match="outside 0–1"):
        dec.fit(None, [np.zeros(10)], gaze=[np.full((2, 10), 2.0)])
    with pytest.raises(DecodeError, match="1 gaze arrays for 2 trials"):
        dec.decision_function(
            None, [np.zeros(10)] * 2, [np.zeros(10)] * 2, window_s=1.0, gaze=[np.zeros((2, 10))]
        )
