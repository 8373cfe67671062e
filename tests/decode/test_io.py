from __future__ import annotations

import json

import numpy as np
import pytest
from _evalsynth import LstsqDecoder, make_trials

from avlab.decode.base import AttentionDecoder, DecodeError, ModelMismatchError
from avlab.decode.io import (
    _BUILTIN,
    check_compatible,
    decoder_class,
    load_model,
    metadata_for,
    register_decoder,
    save_model,
)
from avlab.errors import OutputError

register_decoder(LstsqDecoder)


@register_decoder
class Stacked(AttentionDecoder):
    """Nested estimator + tuple parameter + several state arrays."""

    def __init__(self, *, base=None, weights=(0.5, 0.5), name="s") -> None:
        self.base = base
        self.weights = weights
        self.name = name

    def fit(self, eeg, attended, unattended=None, *, gaze=None, groups=None, prepared=None):
        self.base_ = LstsqDecoder(**self.base.get_params()).fit(eeg, attended)
        self.bias_ = np.float64(0.25)
        return self

    def decision_function(self, eeg, env_a, env_b, *, window_s, gaze=None):
        return [
            s + self.bias_
            for s in self.base_.decision_function(eeg, env_a, env_b, window_s=window_s)
        ]

    def _state_arrays(self):
        return {"base/coef_": self.base_.coef_, "bias_": np.asarray(self.bias_)}

    def _set_state_arrays(self, arrays):
        self.base_ = LstsqDecoder(**self.base.get_params())
        self.base_._set_state_arrays({"coef_": arrays["base/coef_"]})
        self.bias_ = float(arrays["bias_"])


PREP = {"band": (1.0, 9.0), "sfreq": 32.0, "reference": "average"}
ENV = {"method": "hilbert", "exponent": 0.6}


@pytest.fixture()
def trials():
    return make_trials(n_subjects=1, n_trials=4, duration_s=10, noise=2.0)


def test_round_trip_is_exact(tmp_path, trials):
    dec = Stacked(base=LstsqDecoder(alpha=0.01), weights=(0.3, 0.7)).fit(
        [t.eeg for t in trials], [t.envelopes[0] for t in trials]
    )
    meta = metadata_for(trials, method="stacked", preprocessing=PREP, envelope=ENV)
    path = save_model(dec, tmp_path / "m", metadata=meta)
    doc = json.loads(path.read_text())
    assert doc["class_name"] == "Stacked"
    assert doc["params"]["weights"] == {"__tuple__": [0.3, 0.7]}
    assert doc["params"]["base"]["__estimator__"] == "LstsqDecoder"
    assert doc["metadata"]["preprocessing"]["band"] == [1.0, 9.0]
    loaded, meta2 = load_model(tmp_path / "m")
    assert isinstance(loaded, Stacked) and loaded.weights == (0.3, 0.7)
    assert loaded.base.get_params() == {"alpha": 0.01, "sfreq": 32.0}
    np.testing.assert_array_equal(loaded.base_.coef_, dec.base_.coef_)
    args = (
        [t.eeg for t in trials],
        [t.envelopes[0] for t in trials],
        [t.envelopes[1] for t in trials],
    )
    for a, b in zip(
        loaded.decision_function(*args, window_s=2),
        dec.decision_function(*args, window_s=2),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert meta2 == meta
    assert meta2.ch_names == ["E0", "E1", "E2", "E3"] and meta2.sfreq == 32.0
    assert len(meta2.fingerprint) == 64 and meta2.subjects == ["01"]
    with pytest.raises(OutputError, match="already exists"):
        save_model(dec, tmp_path / "m", metadata=meta)
    save_model(dec, tmp_path / "m", metadata=meta, overwrite=True)
    assert metadata_for(trials[:3]).fingerprint != meta.fingerprint


def test_unfitted_and_unsaveable(tmp_path, trials):
    meta = metadata_for(trials)
    with pytest.raises(DecodeError, match="LstsqDecoder is not fitted"):
        save_model(LstsqDecoder(), tmp_path, metadata=meta)
    dec = LstsqDecoder().fit([t.eeg for t in trials], [t.envelopes[0] for t in trials])
    dec.set_params(alpha=np.array([1.0, 2.0]))
    with pytest.raises(DecodeError, match="parameter 'alpha' of LstsqDecoder is a ndarray"):
        save_model(dec, tmp_path, metadata=meta)


def test_missing_corrupt_and_unknown(tmp_path, trials):
    dec = LstsqDecoder().fit([t.eeg for t in trials], [t.envelopes[0] for t in trials])
    d = tmp_path / "m"
    save_model(dec, d, metadata=metadata_for(trials))
    (d / "model.npz").write_bytes(b"not a zip")
    with pytest.raises(DecodeError, match=r"model\.npz is corrupt"):
        load_model(d)
    (d / "model.npz").unlink()
    with pytest.raises(DecodeError, match=r"model file .*model\.npz is missing"):
        load_model(d)
    save_model(dec, d, metadata=metadata_for(trials), overwrite=True)
    doc = json.loads((d / "model.json").read_text())
    doc["class_name"] = "EvilDecoder"
    (d / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelMismatchError, match="unknown decoder class 'EvilDecoder'"):
        load_model(d / "model.json")
    doc["class_name"] = "LstsqDecoder"
    doc["params"] = {"alpha": {"__estimator__": "os:system", "params": {}}}
    (d / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelMismatchError, match="not from avlab or scikit-learn"):
        load_model(d)
    (d / "model.json").write_text("{ not json")
    with pytest.raises(DecodeError, match=r"model\.json is not a valid avlab model file"):
        load_model(d)
    # an object array in the npz is refused by allow_pickle=False
    save_model(dec, d, metadata=metadata_for(trials), overwrite=True)
    np.savez(d / "model.npz", coef_=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DecodeError, match="is corrupt"):
        load_model(d)


def test_backward_decoder_round_trip(tmp_path, trials):
    from avlab.decode.linear import BackwardDecoder

    eeg = [t.eeg for t in trials]
    att, una = [t.envelopes[0] for t in trials], [t.envelopes[1] for t in trials]
    dec = BackwardDecoder(sfreq=32.0, tmax=0.125, alphas=(0.01, 1.0)).fit(eeg, att, una)
    save_model(dec, tmp_path, metadata=metadata_for(trials, method="linear", preprocessing=PREP))
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["class_name"] == "BackwardDecoder"
    loaded, meta = load_model(tmp_path)
    assert type(loaded) is BackwardDecoder and loaded.get_params() == dec.get_params()
    assert loaded.alphas == (0.01, 1.0)
    for x, y in zip(
        loaded.decision_function(eeg, att, una, window_s=2.0),
        dec.decision_function(eeg, att, una, window_s=2.0),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
    check_compatible(meta, ch_names=trials[0].ch_names, sfreq=32.0, preprocessing=PREP)


#: Small, fast settings for every built-in decoder of the registry (completeness checked).
FACTORIES = {
    "BackwardDecoder": dict(sfreq=32.0, tmax=0.125, alphas=(0.01, 1.0)),
    "ForwardTRF": dict(sfreq=32.0, tmax=0.125),
    "CCADecoder": dict(sfreq=32.0),
    "CNNDecoder": dict(sfreq=32.0, max_epochs=1, n_spatial=2, n_filters=4, n_layers=1),
    "GazeDecoder": dict(sfreq=32.0),
    "FusionDecoder": dict(sfreq=32.0, windows=(2.0, 5.0)),
}


def test_registry_is_covered():
    assert set(FACTORIES) == set(_BUILTIN)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_builtin_round_trip(tmp_path, trials, name):
    cls = decoder_class(name)
    rng = np.random.default_rng(0)
    for t in trials:
        t.gaze = np.clip(0.5 + 0.3 * rng.standard_normal((2, t.n_times)) + [[0.2], [-0.2]], 0, 1)
    eeg = [t.eeg for t in trials]
    att, una = [t.envelopes[0] for t in trials], [t.envelopes[1] for t in trials]
    gaze = [t.gaze for t in trials]
    dec = cls(**FACTORIES[name]).fit(eeg, att, una, gaze=gaze, groups=[t.group for t in trials])
    save_model(dec, tmp_path, metadata=metadata_for(trials, method=name))
    loaded, _ = load_model(tmp_path)
    assert type(loaded) is cls and loaded.get_params().keys() == dec.get_params().keys()
    for x, y in zip(
        loaded.decision_function(eeg, att, una, window_s=5.0, gaze=gaze),
        dec.decision_function(eeg, att, una, window_s=5.0, gaze=gaze),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)


def test_check_compatible(trials):
    meta = metadata_for(trials, preprocessing=PREP, envelope=ENV)
    names = trials[0].ch_names
    check_compatible(meta, ch_names=names, sfreq=32.0, preprocessing=PREP, envelope=ENV)
    with pytest.raises(ModelMismatchError, match="ch_names differ: channel 1 is 'X'"):
        check_compatible(meta, ch_names=["E0", "X", "E2", "E3"], sfreq=32.0)
    with pytest.raises(
        ModelMismatchError, match="ch_names differ: 3 channels, the model expects 4"
    ):
        check_compatible(meta, ch_names=names[:3], sfreq=32.0)
    with pytest.raises(ModelMismatchError, match="sfreq differs: data at 64 Hz"):
        check_compatible(meta, ch_names=names, sfreq=64.0)
    with pytest.raises(ModelMismatchError, match=r"preprocessing.band differs: data \[1.0, 8.0\]"):
        check_compatible(
            meta, ch_names=names, sfreq=32.0, preprocessing={**PREP, "band": (1.0, 8.0)}
        )
    with pytest.raises(ModelMismatchError, match="envelope.method differs"):
        check_compatible(meta, ch_names=names, sfreq=32.0, envelope={**ENV, "method": "gammatone"})
