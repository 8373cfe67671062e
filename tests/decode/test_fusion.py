from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone

from avlab.decode.base import AttentionDecoder, DecodeError, ModelMismatchError, window_corr
from avlab.decode.fusion import FusionDecoder
from avlab.decode.gaze import GazeDecoder

SFREQ = 32.0


class SpatialDecoder(AttentionDecoder):
    """Tiny EEG decoder: ridge spatial filter, score r(ŷ, a) − r(ŷ, b) per window."""

    def __init__(self, *, alpha: float = 1e-3, sfreq: float = SFREQ) -> None:
        self.alpha = alpha
        self.sfreq = sfreq

    def prepare(self, eeg, attended, unattended=None, *, gaze=None):
        return [(x @ x.T, x @ a) for x, a in zip(eeg, attended, strict=True)]

    def fit(self, eeg, attended, unattended=None, *, gaze=None, groups=None, prepared=None):
        if prepared is None:
            prepared = self.prepare(eeg, attended)
        xx = sum(p[0] for p in prepared)
        xy = sum(p[1] for p in prepared)
        self.coef_ = np.linalg.solve(xx + self.alpha * np.trace(xx) * np.eye(len(xy)), xy)
        return self

    def decision_function(self, eeg, env_a, env_b, *, window_s, gaze=None):
        out = []
        for x, a, b in zip(eeg, env_a, env_b, strict=True):
            y = self.coef_ @ x
            out.append(
                window_corr(y, a, self.sfreq, window_s) - window_corr(y, b, self.sfreq, window_s)
            )
        return out

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_}

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.coef_ = np.asarray(arrays["coef"])


def smooth(rng: np.random.Generator, n: int, width: int = 6) -> np.ndarray:
    x = np.convolve(rng.standard_normal(n + width), np.ones(width) / width, mode="valid")[:n]
    return (x - x.mean()) / x.std()


def make_set(
    seed: int, n_trials: int, duration_s: float, eeg_noise: float, p_away: float
) -> dict[str, Any]:
    """EEG = pattern × attended envelope + noise; gaze in 1-s fixations, away with p_away.

    EEG noise and gaze look-aways are independent, so each modality errs on other windows.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * SFREQ)
    pattern = rng.standard_normal(4)
    d: dict[str, Any] = {"eeg": [], "att": [], "unatt": [], "gaze": [], "groups": []}
    for t in range(n_trials):
        a, b = smooth(rng, n), smooth(rng, n)
        d["eeg"].append(np.outer(pattern, a) + eeg_noise * rng.standard_normal((4, n)))
        d["att"].append(a)
        d["unatt"].append(b)
        away = np.repeat(rng.random(int(duration_s)) < p_away, int(SFREQ)).astype(float)
        d["gaze"].append(np.stack([1.0 - away, away]))
        d["groups"].append(f"g{t // 2}")
    return d


def split(d: dict[str, Any], idx: Sequence[int]) -> dict[str, Any]:
    return {k: [v[i] for i in idx] for k, v in d.items()}


def fit(dec: AttentionDecoder, d: dict[str, Any]) -> AttentionDecoder:
    eeg = d["eeg"] if dec.uses_eeg else None
    gaze = d["gaze"] if dec.uses_gaze else None
    return dec.fit(eeg, d["att"], d["unatt"], gaze=gaze, groups=d["groups"])


def acc(dec: AttentionDecoder, d: dict[str, Any], window_s: float) -> float:
    eeg = d["eeg"] if dec.uses_eeg else None
    gaze = d["gaze"] if dec.uses_gaze else None
    return dec.score(eeg, d["att"], d["unatt"], window_s=window_s, gaze=gaze)


def fusion() -> FusionDecoder:
    return FusionDecoder(decoders=[SpatialDecoder(), GazeDecoder(sfreq=SFREQ)], windows=(1, 5))


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, Any], dict[str, Any]]:
    d = make_set(0, 36, 60.0, eeg_noise=5.0, p_away=0.3)
    return split(d, range(12)), split(d, range(12, 36))


@pytest.fixture(scope="module")
def fitted(data: tuple[dict[str, Any], dict[str, Any]]) -> FusionDecoder:
    return fit(fusion(), data[0])


def test_fusion_beats_each_modality(
    data: tuple[dict[str, Any], dict[str, Any]], fitted: FusionDecoder
) -> None:
    train, test = data
    eeg_dec = fit(SpatialDecoder(), train)
    for w in (1.0, 5.0):
        a_eeg = acc(eeg_dec, test, w)
        a_gaze = acc(GazeDecoder(sfreq=SFREQ), test, w)
        a_fus = acc(fitted, test, w)
        # measured: 1 s 0.659 / 0.722 / 0.762; 5 s 0.868 / 0.878 / 0.931 (288 windows at 5 s)
        assert a_fus >= max(a_eeg, a_gaze) + 0.03, (w, a_eeg, a_gaze, a_fus)
    # both modalities carry weight; longer windows give larger (more confident) weights
    assert np.all(fitted.weights_ > 0.5)
    np.testing.assert_array_equal(fitted.windows_, [1.0, 5.0])
    assert np.all(fitted.weights_[1] > fitted.weights_[0])
    # 12 training trials x 60 s: every window is scored out of sample once
    np.testing.assert_array_equal(fitted.n_inner_windows_, [12 * 60, 12 * 12])


@pytest.mark.parametrize(("eeg_noise", "p_away", "useless"), [(5.0, 0.5, 1), (1e3, 0.3, 0)])
def test_useless_modality_gets_little_weight(eeg_noise: float, p_away: float, useless: int) -> None:
    d = make_set(1, 12, 60.0, eeg_noise=eeg_noise, p_away=p_away)
    w = fit(fusion(), d).weights_
    assert np.all(np.abs(w[:, useless]) < 0.25 * np.abs(w[:, 1 - useless])), w


def test_antisymmetric_nearest_window_and_prepared(
    data: tuple[dict[str, Any], dict[str, Any]], fitted: FusionDecoder
) -> None:
    train, test = data
    kw = {"gaze": test["gaze"]}
    s = fitted.decision_function(test["eeg"], test["att"], test["unatt"], window_s=5.0, **kw)
    swapped = fitted.decision_function(
        test["eeg"], test["unatt"], test["att"], window_s=5.0, gaze=[g[::-1] for g in kw["gaze"]]
    )
    for a, b in zip(s, swapped, strict=True):
        np.testing.assert_array_equal(a, -b)
    # 4 s uses the 5-s regression: same as scoring with the 5-s coefficients by hand
    s4 = fitted.decision_function(test["eeg"], test["att"], test["unatt"], window_s=4.0, **kw)
    e4 = fitted.decoders_[0].decision_function(
        test["eeg"], test["att"], test["unatt"], window_s=4.0
    )
    g4 = fitted.decoders_[1].decision_function(None, test["att"], test["unatt"], window_s=4.0, **kw)
    np.testing.assert_allclose(s4[0], np.c_[e4[0], g4[0]] @ fitted.coef_[1], rtol=1e-12)
    # prepared once, passed in: same model
    fus = fusion()
    prep = fus.prepare(train["eeg"], train["att"], train["unatt"], gaze=train["gaze"])
    assert len(prep) == 12 and prep[0][1] is None
    fus.fit(
        train["eeg"],
        train["att"],
        train["unatt"],
        gaze=train["gaze"],
        groups=train["groups"],
        prepared=prep,
    )
    np.testing.assert_allclose(fus.coef_, fitted.coef_, rtol=1e-10)


def test_state_round_trip_and_params(
    data: tuple[dict[str, Any], dict[str, Any]], fitted: FusionDecoder
) -> None:
    test = data[1]
    state = fitted._state_arrays()
    assert {"windows", "coef", "scale", "base_classes", "base0.coef"} <= set(state)
    back = FusionDecoder(**fitted.get_params(deep=False))
    back._set_state_arrays({k: np.array(v) for k, v in state.items()})
    for w in (1.0, 5.0):
        a = fitted.decision_function(
            test["eeg"], test["att"], test["unatt"], window_s=w, gaze=test["gaze"]
        )
        b = back.decision_function(
            test["eeg"], test["att"], test["unatt"], window_s=w, gaze=test["gaze"]
        )
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    wrong = FusionDecoder(decoders=[GazeDecoder(sfreq=SFREQ), SpatialDecoder()])
    with pytest.raises(ModelMismatchError, match="base decoders"):
        wrong._set_state_arrays(state)
    params = fitted.get_params()
    assert params["windows"] == (1, 5) and params["C"] == 1.0 and params["n_splits"] is None
    c = clone(fitted)
    assert not hasattr(c, "coef_")
    assert [type(d) for d in c.decoders] == [SpatialDecoder, GazeDecoder]
    assert c.decoders[0] is not fitted.decoders[0]
    c.set_params(C=0.1)
    assert c.C == 0.1
    assert c.uses_eeg and c.uses_gaze
    assert not FusionDecoder(decoders=[GazeDecoder()]).uses_eeg


def test_n_splits_and_errors(data: tuple[dict[str, Any], dict[str, Any]]) -> None:
    train = data[0]
    fus = FusionDecoder(
        decoders=[SpatialDecoder(), GazeDecoder(sfreq=SFREQ)], windows=(5,), n_splits=2
    )
    fit(fus, train)
    assert fus.n_inner_windows_.tolist() == [12 * 12]
    one = dict(train, groups=["same"] * 12)
    single = fit(fusion(), one)  # one group: equal weights on RMS-scaled scores, warned
    assert np.allclose(single.weights_, 1.0) and (single.n_inner_windows_ == 0).all()
    with pytest.raises(DecodeError, match="unattended"):
        fusion().fit(train["eeg"], train["att"], None, gaze=train["gaze"])
    with pytest.raises(DecodeError, match="no inner decision window"):
        fit(FusionDecoder(decoders=[GazeDecoder(sfreq=SFREQ)], windows=(100,)), train)
    with pytest.raises(DecodeError, match="empty list"):
        fit(FusionDecoder(decoders=[]), train)


def test_default_backward_plus_gaze(
    data: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    from avlab.decode.io import ModelMetadata, load_model, save_model
    from avlab.decode.linear import BackwardDecoder

    train, test = data
    fus = fit(FusionDecoder(sfreq=SFREQ, windows=(1, 5)), train)
    assert [type(d) for d in fus.decoders_] == [BackwardDecoder, GazeDecoder]
    assert fus.uses_eeg and fus.uses_gaze
    bd = fit(BackwardDecoder(sfreq=SFREQ), train)
    # measured: 1 s 0.645 / 0.722 / 0.738; 5 s 0.833 / 0.878 / 0.941
    a_gaze = acc(GazeDecoder(sfreq=SFREQ), test, 5.0)
    assert acc(fus, test, 5.0) >= max(acc(bd, test, 5.0), a_gaze) + 0.03
    assert acc(fus, test, 1.0) >= max(acc(bd, test, 1.0), acc(GazeDecoder(sfreq=SFREQ), test, 1.0))
    assert np.all(fus.weights_ > 0.5)
    state = fus._state_arrays()
    assert any(k.startswith("base0.") for k in state) and "base_classes" in state
    save_model(fus, tmp_path, metadata=ModelMetadata(sfreq=SFREQ))
    back, _ = load_model(tmp_path)  # nested base decoders through model.json / model.npz
    kw = {"window_s": 5.0, "gaze": test["gaze"]}
    for x, y in zip(
        back.decision_function(test["eeg"], test["att"], test["unatt"], **kw),
        fus.decision_function(test["eeg"], test["att"], test["unatt"], **kw),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
