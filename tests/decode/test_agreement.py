"""Agreement of avlab's backward model with MNE ``ReceptiveField`` and the ``mtrf`` package.

Design note §2: same data, same leave-one-trial-out folds, one ridge value. λ_ours =
n_train · fs · λ_mtrf (mtrf averages covariances over trials and scales the ridge by
fs); MNE's ``TimeDelayingRidge`` takes λ_ours as ``estimator`` with ``tmin=-0.25,
tmax=0`` (a backward model uses future EEG). Held-out r is computed from each tool's
predictions with one function (per-trial Pearson over all samples).
"""

from __future__ import annotations

# mtrf is in the dev extra (make test installs it); the agreement is an acceptance figure,
# so a missing mtrf fails here rather than skipping
import mne  # noqa: E402
import mne.decoding as mne_decoding  # noqa: E402
import mtrf.model as mtrf_model  # noqa: E402
import numpy as np
import pytest
from _synth import make_trials

from avlab.decode._lagstats import lag_shifts, lagged_predict, solve, sum_stats, trial_stats
from avlab.decode.linear import BackwardDecoder

FS = 64.0
LAM_MTRF = 0.5


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over all samples (the one metric applied to every tool's prediction)."""
    x = np.ravel(x) - np.mean(x)
    y = np.ravel(y) - np.mean(y)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


@pytest.fixture(scope="module")
def data():
    return make_trials(n_trials=6, n_channels=8, n_times=1280, sfreq=FS, snr_db=-5.0, seed=7)


def _ours(data, train: list[int], lam: float):
    sh = lag_shifts(0.0, 0.25, FS)
    stats = [trial_stats(data.eeg[i], data.attended[i][None], sh) for i in train]
    return solve(sum_stats(stats), [lam], absolute=True)[0], sh


def _mtrf(data, train: list[int]):
    trf = mtrf_model.TRF(direction=-1)
    trf.train(
        [data.attended[i][:, None] for i in train],
        [data.eeg[i].T for i in train],
        FS,
        0.0,
        0.25,
        LAM_MTRF,
    )
    return trf


def _mtrf_predict(trf, data, test: int) -> np.ndarray:
    pred, _ = trf.predict(data.attended[test][:, None], data.eeg[test].T)
    pred = pred[0] if isinstance(pred, list) else pred
    return np.asarray(pred)[:, 0]


def _mne(data, train: list[int], lam: float):
    rf = mne_decoding.ReceptiveField(
        tmin=-0.25, tmax=0.0, sfreq=FS, estimator=lam, fit_intercept=True
    )
    x = np.stack([data.eeg[i].T for i in train], axis=1)  # (T, epochs, C), equal lengths
    y = np.stack([data.attended[i] for i in train], axis=1)  # (T, epochs)
    with mne.utils.use_log_level("error"):  # no progress bar
        rf.fit(x, y)
    return rf


def test_loto_correlations_agree_with_mtrf_and_mne(data) -> None:
    n = len(data.eeg)
    rows = []
    for te in range(n):
        train = [i for i in range(n) if i != te]
        lam = len(train) * FS * LAM_MTRF
        sol, sh = _ours(data, train, lam)
        p_ours = lagged_predict(data.eeg[te], sol.W, sol.b, sh)[0]
        p_mtrf = _mtrf_predict(_mtrf(data, train), data, te)
        p_mne = _mne(data, train, lam).predict(data.eeg[te].T[:, None, :]).ravel()
        y = data.attended[te]
        rows.append((pearson(p_ours, y), pearson(p_mtrf, y), pearson(p_mne, y)))
    r = np.array(rows)
    assert r[:, 0].mean() > 0.2  # there is something to agree on
    d_mtrf = np.abs(r[:, 0] - r[:, 1]).max()
    d_mne = np.abs(r[:, 0] - r[:, 2]).max()
    assert d_mtrf < 1e-3, d_mtrf
    assert d_mne < 1e-3, d_mne


def test_weights_match_mtrf(data) -> None:
    train = [0, 1, 2, 3, 4]
    lam = len(train) * FS * LAM_MTRF
    sol, sh = _ours(data, train, lam)
    trf = _mtrf(data, train)
    # mtrf: weights (C, lags −16…0, 1) ×fs, lag −j uses EEG t + j; ours: block i = EEG t + i
    w_mtrf = np.asarray(trf.weights)[:, ::-1, 0].T.reshape(-1) / FS
    b_mtrf = float(np.asarray(trf.bias).ravel()[0]) / FS
    rel = np.abs(sol.W[:, 0] - w_mtrf).max() / np.abs(w_mtrf).max()
    assert rel < 1e-8, rel
    assert abs(sol.b[0] - b_mtrf) < 1e-8 * max(1.0, abs(b_mtrf))
    assert len(sh) == w_mtrf.size // data.eeg[0].shape[0]


def test_backward_decoder_matches_absolute_solution(data) -> None:
    """The estimator with a relative α equal to λ/scale gives the absolute-λ weights."""
    train = [0, 1, 2, 3, 4]
    lam = len(train) * FS * LAM_MTRF
    sol, sh = _ours(data, train, lam)
    tot = sum_stats([trial_stats(data.eeg[i], data.attended[i][None], sh) for i in train])
    gc = tot.G - np.outer(tot.m, tot.m) / tot.n
    alpha = lam / (np.trace(gc) / gc.shape[0])
    dec = BackwardDecoder(alpha=alpha, sfreq=FS).fit(
        [data.eeg[i] for i in train], [data.attended[i] for i in train]
    )
    np.testing.assert_allclose(dec.coef_.reshape(-1), sol.W[:, 0], rtol=1e-9, atol=1e-12)
    assert dec.intercept_ == pytest.approx(sol.b[0], rel=1e-9)
