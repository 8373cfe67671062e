from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch  # noqa: E402  (the deep extra, installed by make test)
from sklearn.base import clone

from avlab.decode.base import DecodeError, ModelMismatchError
from avlab.decode.cnn import CNNDecoder

SFREQ = 64.0
N_CH = 8


def smooth(rng: np.random.Generator, n: int, width: int = 8) -> np.ndarray:
    x = np.convolve(rng.standard_normal(n + width), np.ones(width) / width, mode="valid")[:n]
    return (x - x.mean()) / x.std()


def make_set(seed: int, n_trials: int, duration_s: float, noise: float) -> dict[str, list[Any]]:
    """EEG (volts) = pattern × attended envelope through a 150-ms decaying response + noise."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * SFREQ)
    pattern = rng.standard_normal(N_CH)
    kern = np.exp(-np.arange(10) / 3.0)
    d: dict[str, list[Any]] = {"eeg": [], "att": [], "unatt": [], "groups": []}
    for t in range(n_trials):
        a, b = smooth(rng, n), smooth(rng, n)
        resp = np.convolve(a, kern)[:n]
        resp /= resp.std()
        d["eeg"].append(1e-6 * (np.outer(pattern, resp) + noise * rng.standard_normal((N_CH, n))))
        d["att"].append(a)
        d["unatt"].append(b)
        d["groups"].append(f"g{t // 2}")
    return d


def small(**kw: Any) -> CNNDecoder:
    params = {"n_spatial": 4, "n_filters": 8, "max_epochs": 5, "lr": 3e-3, "sfreq": SFREQ}
    return CNNDecoder(**(params | kw))


@pytest.fixture(scope="module")
def data() -> dict[str, list[Any]]:
    return make_set(0, 12, 60.0, noise=5.0)


def train(d: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: v[:8] for k, v in d.items()}


def held_out(d: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: v[8:] for k, v in d.items()}


def fit(dec: CNNDecoder, d: dict[str, list[Any]]) -> CNNDecoder:
    return dec.fit(d["eeg"], d["att"], d["unatt"], groups=d["groups"])


def scores(dec: CNNDecoder, d: dict[str, list[Any]], w: float, swap: bool = False) -> np.ndarray:
    a, b = (d["unatt"], d["att"]) if swap else (d["att"], d["unatt"])
    return np.concatenate(dec.decision_function(d["eeg"], a, b, window_s=w))


@pytest.fixture(scope="module")
def fitted(data: dict[str, list[Any]]) -> CNNDecoder:
    return fit(small(), train(data))


def test_beats_chance_and_antisymmetric(data: dict[str, list[Any]], fitted: CNNDecoder) -> None:
    te = held_out(data)
    # measured: 0.72 at 1 s (240 windows), 1.00 at 5 s (48) and 10 s (24)
    assert fitted.score(te["eeg"], te["att"], te["unatt"], window_s=1.0) > 0.62
    assert fitted.score(te["eeg"], te["att"], te["unatt"], window_s=5.0) >= 0.95
    for w in (1.0, 5.0, 30.0):
        s = scores(fitted, te, w)
        np.testing.assert_array_equal(scores(fitted, te, w, swap=True), -s)
    assert scores(fitted, te, 30.0).shape == (8,)
    # early stopping bookkeeping: the weights kept are those of the best held-out epoch
    assert fitted.val_group_ in set(train(data)["groups"])
    assert len(fitted.train_loss_) == len(fitted.val_loss_) == fitted.n_epochs_
    assert fitted.best_epoch_ == int(np.argmin(fitted.val_loss_)) + 1
    held = [i for i, g in enumerate(train(data)["groups"]) if g == fitted.val_group_]
    width, hop = 320, 160
    logits = []
    with torch.no_grad():
        for i in held:
            x, a, b = (
                np.asarray(train(data)[k][i], dtype=np.float32) for k in ("eeg", "att", "unatt")
            )
            st = range(0, x.shape[1] - width + 1, hop)
            logits.append(
                fitted.net_(
                    torch.from_numpy(np.stack([x[:, s : s + width] for s in st])),
                    torch.from_numpy(np.stack([a[s : s + width] for s in st])),
                    torch.from_numpy(np.stack([b[s : s + width] for s in st])),
                ).numpy()
            )
    val = float(np.mean(np.logaddexp(0.0, -np.concatenate(logits).astype(np.float64))))
    assert val == pytest.approx(fitted.val_loss_[fitted.best_epoch_ - 1], rel=1e-4)


def test_deterministic_and_torch_settings_restored(
    data: dict[str, list[Any]], fitted: CNNDecoder
) -> None:
    te = held_out(data)
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    again = fit(small(), train(data))
    np.testing.assert_array_equal(torch.rand(3).numpy(), before.numpy())  # caller's RNG kept
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
    np.testing.assert_array_equal(scores(again, te, 2.0), scores(fitted, te, 2.0))
    np.testing.assert_array_equal(again.train_loss_, fitted.train_loss_)
    other = fit(small(seed=1), train(data))
    assert not np.array_equal(scores(other, te, 2.0), scores(fitted, te, 2.0))


def test_state_round_trip(data: dict[str, list[Any]], fitted: CNNDecoder, tmp_path: Path) -> None:
    from avlab.decode.io import ModelMetadata, load_model, save_model

    te = held_out(data)
    state = fitted._state_arrays()
    assert int(state["n_channels"]) == N_CH
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert "net.spatial.weight" in state and "net.head.weight" in state
    back = CNNDecoder(**fitted.get_params())
    back._set_state_arrays({k: np.array(v) for k, v in state.items()})
    for w in (1.0, 5.0):
        np.testing.assert_array_equal(scores(back, te, w), scores(fitted, te, w))
    save_model(fitted, tmp_path, metadata=ModelMetadata(sfreq=SFREQ))
    loaded, _ = load_model(tmp_path)
    np.testing.assert_array_equal(scores(loaded, te, 5.0), scores(fitted, te, 5.0))
    with pytest.raises(ModelMismatchError, match="do not fit the network"):
        small(n_filters=4)._set_state_arrays(state)
    with pytest.raises(ModelMismatchError, match="trained on 8 EEG channels"):
        back.decision_function([x[:4] for x in te["eeg"]], te["att"], te["unatt"], window_s=5.0)


def test_params_clone_windows_and_errors(data: dict[str, list[Any]], fitted: CNNDecoder) -> None:
    params = fitted.get_params()
    assert params["window_s"] == 5.0 and params["hop_s"] == 2.5 and params["n_filters"] == 8
    c = clone(fitted)
    assert not hasattr(c, "net_") and c.get_params() == params
    c.set_params(max_epochs=2)
    assert c.max_epochs == 2
    assert CNNDecoder().receptive_field == 27
    te = held_out(data)
    with pytest.raises(DecodeError, match="shorter than the receptive field"):
        fitted.decision_function(te["eeg"], te["att"], te["unatt"], window_s=0.3)
    with pytest.raises(DecodeError, match="both talkers"):
        small().fit(te["eeg"], te["att"], None)
    with pytest.raises(DecodeError, match="no training window"):
        small(window_s=100.0).fit(te["eeg"], te["att"], te["unatt"])
    # one group: no held-out group, all epochs run
    one = small(max_epochs=2).fit(te["eeg"][:2], te["att"][:2], te["unatt"][:2], groups=["a", "a"])
    assert one.n_epochs_ == 2 and one.val_group_ == "" and one.val_loss_.size == 0


def test_without_torch(monkeypatch: pytest.MonkeyPatch, data: dict[str, list[Any]]) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(DecodeError, match=r"pip install 'avlab\[deep\]'"):
        small().fit(data["eeg"], data["att"], data["unatt"])


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, avlab.decode, avlab.decode.cnn, avlab.decode.gaze, avlab.decode.fusion; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
