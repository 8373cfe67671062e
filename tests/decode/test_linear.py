"""Backward decoder and forward TRF on simulated trials with a known response."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from _synth import make_trials
from sklearn.base import clone

from avlab.decode._lagstats import (
    lag_shifts,
    lagged_predict,
    loo_scores,
    r_from_stats,
    solve,
    sum_stats,
    trial_stats,
)
from avlab.decode.base import Trial
from avlab.decode.io import load_model, metadata_for, save_model
from avlab.decode.linear import BackwardDecoder, ForwardTRF, plot_trf

FS = 64.0
CH_NAMES = ["Fz", "Cz", "Pz", "C3", "C4", "F3", "F4", "Oz"]


@pytest.fixture(scope="module")
def high():
    return make_trials(n_trials=8, n_channels=8, n_times=int(40 * FS), snr_db=5.0, seed=1)


@pytest.fixture(scope="module")
def low():
    return make_trials(n_trials=8, n_channels=8, n_times=int(30 * FS), snr_db=-15.0, seed=2)


def _fit(dec, d, idx):
    return dec.fit([d.eeg[i] for i in idx], [d.attended[i] for i in idx])


def _score(dec, d, idx, window_s):
    return dec.score(
        [d.eeg[i] for i in idx],
        [d.attended[i] for i in idx],
        [d.unattended[i] for i in idx],
        window_s=window_s,
    )


def test_backward_decodes_at_high_snr(high) -> None:
    dec = _fit(BackwardDecoder(sfreq=FS), high, range(6))
    assert _score(dec, high, [6, 7], 5.0) >= 0.95
    assert dec.coef_.shape == (17, 8)
    assert dec.patterns_.shape == (17, 8)


def test_backward_chance_on_pure_noise() -> None:
    d = make_trials(n_trials=10, n_channels=8, n_times=int(60 * FS), snr_db=-np.inf, seed=3)
    dec = _fit(BackwardDecoder(sfreq=FS), d, range(5))
    acc = _score(dec, d, range(5, 10), 2.0)  # 150 windows
    assert 0.35 <= acc <= 0.65, acc


def test_loto_subtraction_equals_direct_refit(low) -> None:
    sh = lag_shifts(0.0, 0.25, FS)
    stats = [trial_stats(x, y[None], sh) for x, y in zip(low.eeg, low.attended, strict=True)]
    total = sum_stats(stats)
    for k in (0, 5):
        rest = [s for i, s in enumerate(stats) if i != k]
        a = solve(total - stats[k], [0.1])[0]
        b = solve(sum_stats(rest), [0.1])[0]
        np.testing.assert_allclose(a.W, b.W, rtol=1e-10, atol=1e-12 * np.abs(b.W).max())
        assert a.b[0] == pytest.approx(b.b[0], rel=1e-10, abs=1e-12)
        # held-out r from statistics equals r of the explicit prediction
        pred = lagged_predict(low.eeg[k], a.W, a.b, sh)[0]
        r_direct = np.corrcoef(pred, low.attended[k])[0, 1]
        assert r_from_stats(a, stats[k])[0, 0] == pytest.approx(r_direct, abs=1e-10)
    scores = loo_scores(stats, [0.1], lambda s, t: float(r_from_stats(s, t)[0, 0]))
    direct = solve(sum_stats(stats[1:]), [0.1])[0]
    assert scores[0, 0] == pytest.approx(float(r_from_stats(direct, stats[0])[0, 0]), abs=1e-10)


def test_inner_alpha_selection_is_sensible(low) -> None:
    alphas = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    dec = _fit(BackwardDecoder(sfreq=FS, alphas=alphas), low, range(6))
    assert dec.alpha_ == alphas[int(np.argmax(dec.inner_scores_))]
    assert np.all(np.isfinite(dec.inner_scores_))
    # the chosen α is close to the best α on held-out trials (oracle)
    held = []
    for a in alphas:
        f = _fit(BackwardDecoder(sfreq=FS, alpha=a), low, range(6))
        pred = f.predict_envelope([low.eeg[6], low.eeg[7]])
        rs = [np.corrcoef(p, low.attended[i])[0, 1] for p, i in zip(pred, (6, 7), strict=True)]
        held.append(float(np.mean(rs)))
    assert held[alphas.index(dec.alpha_)] >= max(held) - 0.03, (dec.alpha_, np.round(held, 3))
    assert dec.alpha_ > 1e-3  # low SNR, little data: not the least regularized


def test_single_group_fallback_uses_middle_alpha(low, caplog) -> None:
    dec = BackwardDecoder(sfreq=FS)
    with caplog.at_level(logging.WARNING, logger="avlab"):
        dec.fit(low.eeg[:4], low.attended[:4], groups=["g"] * 4)
    assert dec.alpha_ == pytest.approx(1e-1)
    assert "only one training group" in caplog.text
    assert np.all(np.isnan(dec.inner_scores_))


def test_params_and_clone() -> None:
    dec = BackwardDecoder(tmin=0.0, tmax=0.2, sfreq=FS, alpha=0.5)
    p = dec.get_params()
    assert p["tmax"] == 0.2 and p["alpha"] == 0.5 and p["inner_cv"] == "loto"
    dec.set_params(alpha=None, tmax=0.25)
    assert dec.alpha is None and dec.tmax == 0.25
    c = clone(dec)
    assert c.get_params() == dec.get_params() and c is not dec
    assert not hasattr(c, "coef_")
    assert clone(ForwardTRF(tmin=-0.05)).get_params()["tmin"] == -0.05


def _trials(d, idx) -> list[Trial]:
    return [
        Trial(
            eeg=d.eeg[i],
            envelopes=np.stack([d.attended[i], d.unattended[i]]),
            sfreq=FS,
            subject="01",
            trial=int(i),
            group=str(i),
            ch_names=CH_NAMES,
        )
        for i in idx
    ]


@pytest.mark.parametrize("cls", [BackwardDecoder, ForwardTRF])
def test_state_round_trip(high, tmp_path, cls) -> None:
    dec = _fit(cls(sfreq=FS), high, range(4))
    save_model(dec, tmp_path / "m", metadata=metadata_for(_trials(high, range(4)), method="x"))
    loaded, meta = load_model(tmp_path / "m")
    assert type(loaded) is cls and loaded.get_params() == dec.get_params()
    args = ([high.eeg[6]], [high.attended[6]], [high.unattended[6]])
    a = dec.decision_function(*args, window_s=5.0)
    b = loaded.decision_function(*args, window_s=5.0)
    np.testing.assert_array_equal(a[0], b[0])
    assert meta.ch_names == CH_NAMES


def test_forward_trf_recovers_kernel_and_decodes(high) -> None:
    trf = _fit(ForwardTRF(sfreq=FS), high, range(6))
    assert trf.coef_.shape == (8, len(trf.times_))
    sel = (trf.times_ >= -1e-9) & (trf.times_ <= 0.25 + 1e-9)
    truth = np.outer(high.mixing, high.kernel)
    r = np.corrcoef(trf.coef_[:, sel].ravel(), truth.ravel())[0, 1]
    assert r > 0.9, r
    assert _score(trf, high, [6, 7], 5.0) >= 0.9


def test_plot_trf(high) -> None:
    import mne
    from matplotlib.figure import Figure

    trf = _fit(ForwardTRF(sfreq=FS, alpha=1.0), high, range(4))
    fig = plot_trf(trf, CH_NAMES)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    info = mne.create_info(CH_NAMES, FS, "eeg")
    with warnings.catch_warnings():  # MNE 1.13 deprecates the name (→ "colin27_1020")
        warnings.filterwarnings("ignore", "Montage name 'standard_1020'", FutureWarning)
        info.set_montage("standard_1020")
    fig2 = plot_trf(trf, CH_NAMES, montage_info=info, scale=1.0, unit="a.u.")
    assert isinstance(fig2, Figure)
    assert len(fig2.axes) >= 3  # time course + two scalp maps
