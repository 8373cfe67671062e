"""CCA decoder on simulated trials with a known response."""

from __future__ import annotations

import numpy as np
import pytest
from _synth import make_trials
from sklearn.base import clone

from avlab.decode.base import DecodeError
from avlab.decode.cca import CCADecoder

FS = 64.0


@pytest.fixture(scope="module")
def data():
    return make_trials(n_trials=8, n_channels=8, n_times=int(40 * FS), snr_db=-10.0, seed=3)


def _split(d, idx):
    return [d.eeg[i] for i in idx], [d.attended[i] for i in idx], [d.unattended[i] for i in idx]


def test_cca_beats_chance(data) -> None:
    dec = CCADecoder(sfreq=FS).fit(*_split(data, range(6)))
    acc = dec.score(*_split(data, [6, 7]), window_s=5.0)
    assert acc >= 0.85, acc  # 16 windows; chance is 0.5
    assert dec.canonical_corr_[0] > dec.canonical_corr_[-1] >= 0
    assert dec.clf_coef_[0] > 0  # the first component supports the attended talker


def test_cca_antisymmetric_and_chance_on_noise(data) -> None:
    dec = CCADecoder(sfreq=FS).fit(*_split(data, range(6)))
    e, a, u = _split(data, [6, 7])
    s_ab = dec.decision_function(e, a, u, window_s=5.0)
    s_ba = dec.decision_function(e, u, a, window_s=5.0)
    for x, y in zip(s_ab, s_ba, strict=True):
        np.testing.assert_allclose(x, -y, atol=1e-12)
    rng = np.random.default_rng(0)
    noise = [rng.standard_normal(x.shape) for x in data.eeg]
    accs = []
    for _k in range(4):  # 4 random train/test assignments of pure-noise EEG
        idx = rng.permutation(8)
        d = CCADecoder(sfreq=FS).fit(
            noise[:6], *[[v[i] for i in idx[:6]] for v in (data.attended, data.unattended)]
        )
        accs.append(
            d.score(
                noise[6:],
                [data.attended[i] for i in idx[6:]],
                [data.unattended[i] for i in idx[6:]],
                window_s=2.0,
            )
        )
    assert 0.3 < np.mean(accs) < 0.7, accs


def test_cca_prepared_equals_direct_and_state_round_trip(data) -> None:
    e, a, u = _split(data, range(6))
    d1 = CCADecoder(sfreq=FS).fit(e, a, u)
    dec = CCADecoder(sfreq=FS)
    d2 = dec.fit(e, a, u, prepared=dec.prepare(e, a, u))
    np.testing.assert_allclose(d1.wx_, d2.wx_, atol=1e-12)
    d3 = clone(d1)
    assert d3.get_params() == d1.get_params() and not hasattr(d3, "wx_")
    d3._set_state_arrays(d1._state_arrays())
    te = _split(data, [6, 7])
    for x, y in zip(
        d1.decision_function(*te, window_s=5.0),
        d3.decision_function(*te, window_s=5.0),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(DecodeError, match="unattended"):
        CCADecoder(sfreq=FS).fit(e, a)
