"""CCA decoder on simulated trials: decodes, antisymmetric, exact statistics, saving."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from _synth import make_trials
from sklearn.base import clone

from avlab.decode._lagstats import sum_stats
from avlab.decode.base import Trial
from avlab.decode.cca import CCADecoder, _lagged_rows
from avlab.decode.io import load_model, metadata_for, save_model

FS = 64.0


@pytest.fixture(scope="module")
def data():
    return make_trials(n_trials=8, n_channels=8, n_times=int(40 * FS), snr_db=-10.0, seed=4)


@pytest.fixture(scope="module")
def fitted(data):
    return CCADecoder(sfreq=FS).fit(data.eeg[:6], data.attended[:6], data.unattended[:6])


def test_cca_decodes_above_chance(data, fitted) -> None:
    acc = fitted.score(data.eeg[6:], data.attended[6:], data.unattended[6:], window_s=5.0)
    assert acc >= 0.85, acc
    assert fitted.n_inner_windows_ == 6 * 8  # inner held-out 5-s windows
    assert fitted.coef_.shape == (3,) and fitted.coef_[0] > 0
    assert np.all(np.diff(fitted.canonical_corr_) <= 1e-12)


def test_cca_chance_on_noise() -> None:
    d = make_trials(n_trials=10, n_channels=8, n_times=int(60 * FS), snr_db=-np.inf, seed=5)
    dec = CCADecoder(sfreq=FS).fit(d.eeg[:5], d.attended[:5], d.unattended[:5])
    acc = dec.score(d.eeg[5:], d.attended[5:], d.unattended[5:], window_s=2.0)
    assert 0.35 <= acc <= 0.65, acc


def test_antisymmetric(data, fitted) -> None:
    args = (data.eeg[6:], data.attended[6:], data.unattended[6:])
    ab = fitted.decision_function(*args, window_s=2.0)
    ba = fitted.decision_function(args[0], args[2], args[1], window_s=2.0)
    for s, t in zip(ab, ba, strict=True):
        np.testing.assert_allclose(s, -t, atol=1e-12)


def test_statistics_match_explicit_cca(data) -> None:
    """The CCA from additive statistics equals the one from explicit lagged matrices."""
    dec = CCADecoder(sfreq=FS, reg=1e-2, n_components=2)
    prep = dec.prepare(data.eeg[:3], data.attended[:3], data.unattended[:3])
    wx, wy, rho = dec._solve(sum_stats(p.xs for p in prep), sum_stats(p.ys for p in prep))
    sx = dec._x_shifts()
    # explicit design, columns lag-major (lag i, channel c) as the statistics
    ax = np.concatenate(
        [np.concatenate([_lagged_rows(c, sx) for c in x])[
            np.arange(x.shape[0] * len(sx)).reshape(x.shape[0], len(sx)).T.ravel()
        ].T for x in data.eeg[:3]]
    )  # fmt: skip
    ay = np.concatenate([_lagged_rows(a, dec._y_shifts()).T for a in data.attended[:3]])
    ax, ay = ax - ax.mean(0), ay - ay.mean(0)
    cxx, cyy, cxy = ax.T @ ax, ay.T @ ay, ax.T @ ay
    for c in (cxx, cyy):
        c.flat[:: c.shape[0] + 1] += 1e-2 * np.trace(c) / c.shape[0]
    np.testing.assert_allclose(wx.T @ cxx @ wx, np.eye(2), atol=1e-8)
    np.testing.assert_allclose(wy.T @ cyy @ wy, np.eye(2), atol=1e-8)
    np.testing.assert_allclose(wx.T @ cxy @ wy, np.diag(rho), atol=1e-8)
    ev = np.linalg.eigvals(np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T))
    np.testing.assert_allclose(np.sort(np.sqrt(np.abs(ev.real)))[::-1][:2], rho, rtol=1e-6)


def test_prepared_equals_raw_fit(data, fitted) -> None:
    dec = CCADecoder(sfreq=FS)
    prep = dec.prepare(data.eeg[:6], data.attended[:6], data.unattended[:6])
    dec.fit(None, data.attended[:6], prepared=prep)
    np.testing.assert_allclose(dec.coef_, fitted.coef_, rtol=1e-12)


def test_single_group_fallback(data, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="avlab"):
        dec = CCADecoder(sfreq=FS).fit(
            data.eeg[:4], data.attended[:4], data.unattended[:4], groups=["g"] * 4
        )
    assert "no inner held-out windows" in caplog.text
    assert dec.n_inner_windows_ == 0
    np.testing.assert_array_equal(dec.coef_, dec.canonical_corr_)


def test_params_and_clone() -> None:
    dec = CCADecoder(n_components=4, reg=0.1, C=0.5)
    p = dec.get_params()
    assert p["n_components"] == 4 and p["reg"] == 0.1 and p["train_window_s"] == 5.0
    dec.set_params(env_tmax=0.3)
    c = clone(dec)
    assert c.get_params() == dec.get_params() and c.env_tmax == 0.3
    assert not hasattr(c, "coef_")


def test_state_round_trip(data, fitted, tmp_path) -> None:
    trials = [
        Trial(
            eeg=data.eeg[i],
            envelopes=np.stack([data.attended[i], data.unattended[i]]),
            sfreq=FS,
            subject="01",
            trial=i,
            group=str(i),
            ch_names=[f"E{c}" for c in range(8)],
        )
        for i in range(6)
    ]
    save_model(fitted, tmp_path / "m", metadata=metadata_for(trials, method="cca"))
    loaded, _ = load_model(tmp_path / "m")
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    args = (data.eeg[6:], data.attended[6:], data.unattended[6:])
    for s, t in zip(
        fitted.decision_function(*args, window_s=5.0),
        loaded.decision_function(*args, window_s=5.0),
        strict=True,
    ):
        np.testing.assert_array_equal(s, t)
