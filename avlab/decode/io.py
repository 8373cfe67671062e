"""Save a fitted decoder and apply it to other data: ``model.json`` + ``model.npz``, no pickle.

``model.json`` holds the decoder's class name, its parameters (``get_params``; nested
estimators and tuples encoded explicitly) and a :class:`ModelMetadata` record: the
preprocessing and envelope settings, channel names, sampling rate, avlab version and
a fingerprint of the training data. ``model.npz`` holds the fitted state as plain
numeric arrays (``decoder._state_arrays()``), read back with
``np.load(..., allow_pickle=False)``. Only decoder classes in the registry can be
loaded, so a model file cannot make avlab import arbitrary code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError
from sklearn.base import BaseEstimator

from avlab._logging import logger
from avlab.decode.base import AttentionDecoder, DecodeError, ModelMismatchError, Trial
from avlab.errors import AvlabError, OutputError

__all__ = [
    "MODEL_JSON",
    "MODEL_NPZ",
    "ModelMetadata",
    "check_compatible",
    "decoder_class",
    "fingerprint_trials",
    "load_model",
    "metadata_for",
    "register_decoder",
    "save_model",
]

MODEL_JSON = "model.json"
MODEL_NPZ = "model.npz"
FORMAT_VERSION = 1

#: Built-in decoders: class name → module (imported only when a file names the class).
_BUILTIN: dict[str, str] = {
    "BackwardDecoder": "avlab.decode.linear",
    "ForwardTRF": "avlab.decode.linear",
    "CCADecoder": "avlab.decode.cca",
    "CNNDecoder": "avlab.decode.cnn",
    "GazeDecoder": "avlab.decode.gaze",
    "FusionDecoder": "avlab.decode.fusion",
}
_REGISTERED: dict[str, type[BaseEstimator]] = {}
#: Modules whose estimators may appear nested in saved parameters.
_SAFE_MODULES = ("avlab.decode.", "sklearn.")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _avlab_version() -> str:
    from avlab import __version__

    return __version__


class ModelMetadata(BaseModel):
    """What a saved model was trained on; checked before applying it to new data.

    Attributes
    ----------
    method : str
        Method label (``"linear"``, ``"cca"``, ...).
    preprocessing, envelope : dict
        The ``Preprocessing`` and ``EnvelopeConfig`` settings, as JSON dicts.
    ch_names : list of str
        EEG channels, in the order the model expects.
    sfreq : float
        Sampling rate of the model's inputs, Hz.
    avlab_version : str
    fingerprint : str
        SHA-256 of the training trials (:func:`fingerprint_trials`).
    subjects : list of str
        Training subjects.
    created : str
        ISO 8601 UTC time of saving.
    """

    method: str = ""
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    envelope: dict[str, Any] = Field(default_factory=dict)
    ch_names: list[str] = Field(default_factory=list)
    sfreq: float
    avlab_version: str = Field(default_factory=_avlab_version)
    fingerprint: str = ""
    subjects: list[str] = Field(default_factory=list)
    created: str = Field(default_factory=_now)


class _ModelFile(BaseModel):
    format: Literal["avlab-decoder"] = "avlab-decoder"
    format_version: int = FORMAT_VERSION
    class_name: str
    params: dict[str, Any]
    arrays: list[str]
    metadata: ModelMetadata


def register_decoder(cls: type[BaseEstimator]) -> type[BaseEstimator]:
    """Allow :func:`load_model` to rebuild ``cls`` (for decoders outside avlab); returns ``cls``."""
    _REGISTERED[cls.__name__] = cls
    return cls


def decoder_class(name: str, *, source: Path | str = "model file") -> type[BaseEstimator]:
    """Return the decoder class registered under ``name`` (importing its module lazily).

    Raises
    ------
    ModelMismatchError
        ``name`` is not a known decoder.
    DecodeError
        Its module cannot be imported (e.g. the CNN without the ``deep`` extra).
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        known = ", ".join(sorted({*_BUILTIN, *_REGISTERED}))
        raise ModelMismatchError(
            f"{source}: unknown decoder class {name!r}.",
            hint=f"Known decoders: {known}. Was the model saved by a newer avlab?",
        )
    try:
        module = importlib.import_module(_BUILTIN[name])
    except ImportError as exc:
        raise DecodeError(
            f"{source}: cannot import {_BUILTIN[name]} for {name}: {exc}.",
            hint="Install the extra it needs (e.g. pip install 'avlab[deep]' for the CNN).",
        ) from exc
    cls = getattr(module, name, None)
    if cls is None:
        raise DecodeError(
            f"{source}: {_BUILTIN[name]} has no decoder {name}.",
            hint="This avlab version lacks the decoder; upgrade avlab.",
        )
    return cls


# -- parameters <-> JSON ---------------------------------------------------------------
def _encode(value: Any, name: str, owner: str) -> Any:
    if isinstance(value, BaseEstimator):
        cls = type(value)
        ref = cls.__name__ if cls.__name__ in {*_BUILTIN, *_REGISTERED} else None
        if ref is None:
            ref = f"{cls.__module__}:{cls.__qualname__}"
        params = value.get_params(deep=False)
        return {"__estimator__": ref, "params": {k: _encode(v, k, ref) for k, v in params.items()}}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, name, owner) for v in value]}
    if isinstance(value, list):
        return [_encode(v, name, owner) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v, f"{name}.{k}", owner) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise DecodeError(
        f"parameter {name!r} of {owner} is a {type(value).__name__}, which cannot be saved.",
        hint="Use numbers, strings, tuples, lists or estimators as decoder parameters.",
    )


def _decode(value: Any, source: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, source) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v, source) for v in value["__tuple__"])
        if set(value) == {"__estimator__", "params"}:
            ref = str(value["__estimator__"])
            if ":" in ref:
                mod, _, qual = ref.partition(":")
                if not mod.startswith(_SAFE_MODULES):
                    raise ModelMismatchError(
                        f"{source}: nested estimator {ref!r} is not from avlab or scikit-learn.",
                        hint="Only avlab and scikit-learn estimators can be loaded.",
                    )
                try:
                    cls = getattr(importlib.import_module(mod), qual)
                except (ImportError, AttributeError) as exc:
                    raise ModelMismatchError(
                        f"{source}: cannot find nested estimator {ref!r}.",
                        hint="Load the model with the library versions that saved it.",
                    ) from exc
            else:
                cls = decoder_class(ref, source=source)
            return cls(**{k: _decode(v, source) for k, v in value["params"].items()})
        return {k: _decode(v, source) for k, v in value.items()}
    return value


# -- metadata helpers ----------------------------------------------------------------
def fingerprint_trials(trials: Sequence[Trial]) -> str:
    """SHA-256 of the trials' identities, shapes, EEG and envelopes (hex)."""
    h = hashlib.sha256()
    for t in trials:
        head = f"{t.subject}|{t.session}|{t.run}|{t.trial}|{t.segment}|{t.sfreq}|{t.eeg.shape}"
        h.update(head.encode())
        h.update(np.ascontiguousarray(t.eeg, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(t.envelopes, dtype=np.float64).tobytes())
    return h.hexdigest()


def _as_dict(obj: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    raw = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else dict(obj)
    return json.loads(json.dumps(raw, default=str))  # tuples → lists, as read back


def metadata_for(
    trials: Sequence[Trial],
    *,
    method: str = "",
    preprocessing: BaseModel | Mapping[str, Any] | None = None,
    envelope: BaseModel | Mapping[str, Any] | None = None,
) -> ModelMetadata:
    """Build the :class:`ModelMetadata` of a model trained on ``trials``."""
    if not trials:
        raise DecodeError("no training trials to describe.", hint="Fit on at least one trial.")
    return ModelMetadata(
        method=method,
        preprocessing=_as_dict(preprocessing),
        envelope=_as_dict(envelope),
        ch_names=list(trials[0].ch_names),
        sfreq=float(trials[0].sfreq),
        fingerprint=fingerprint_trials(trials),
        subjects=sorted({t.subject for t in trials}),
    )


# -- save / load -------------------------------------------------------------------
def save_model(
    decoder: AttentionDecoder,
    directory: Path | str,
    *,
    metadata: ModelMetadata,
    overwrite: bool = False,
) -> Path:
    """Write a fitted decoder to ``directory/model.json`` and ``directory/model.npz``.

    Parameters
    ----------
    decoder : AttentionDecoder
        A fitted decoder.
    directory : Path | str
        Output folder (created).
    metadata : ModelMetadata
    overwrite : bool
        Replace an existing model in ``directory``.

    Returns
    -------
    Path
        The ``model.json`` written.

    Raises
    ------
    DecodeError
        The decoder is not fitted, cannot be saved, or a parameter is not JSON-able.
    OutputError
        A model exists and ``overwrite`` is False, or the folder is not writable.
    """
    directory = Path(directory)
    name = type(decoder).__name__
    jpath, npath = directory / MODEL_JSON, directory / MODEL_NPZ
    if jpath.exists() and not overwrite:
        raise OutputError(f'"{jpath}" already exists.', hint="Pass overwrite=True to replace it.")
    try:
        arrays = decoder._state_arrays()
    except NotImplementedError as exc:
        raise DecodeError(f"{name} cannot be saved.", hint="It has no _state_arrays().") from exc
    except AttributeError as exc:
        raise DecodeError(f"{name} is not fitted: {exc}.", hint="Call fit() first.") from exc
    clean: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype.hasobject or a.dtype.kind not in "biufcUS":
            raise DecodeError(
                f"{name} state array {key!r} has dtype {a.dtype}, which cannot be saved "
                "without pickle.",
                hint="Return numeric arrays from _state_arrays().",
            )
        clean[key] = a
    doc = _ModelFile(
        class_name=name,
        params={k: _encode(v, k, name) for k, v in decoder.get_params(deep=False).items()},
        arrays=sorted(clean),
        metadata=metadata,
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{MODEL_NPZ}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **clean)
        os.replace(tmp, npath)
        tmp = directory / f".{MODEL_JSON}.tmp"
        tmp.write_text(doc.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, jpath)  # written last: a model.json means the model is complete
    except OSError as exc:
        raise OutputError(
            f"cannot write the model to {directory}: {exc.strerror or exc}.",
            hint="Check that the folder is writable and the disk has space.",
        ) from exc
    logger.info("wrote %s and %s", jpath, npath)
    return jpath


def load_model(directory: Path | str) -> tuple[AttentionDecoder, ModelMetadata]:
    """Read a decoder saved by :func:`save_model`.

    Parameters
    ----------
    directory : Path | str
        The model folder (or its ``model.json``).

    Returns
    -------
    decoder : AttentionDecoder
        Fitted, ready for ``decision_function``/``predict``.
    metadata : ModelMetadata

    Raises
    ------
    DecodeError
        A file is missing or corrupt.
    ModelMismatchError
        The file names an unknown decoder class.
    """
    directory = Path(directory)
    if directory.name == MODEL_JSON:
        directory = directory.parent
    jpath, npath = directory / MODEL_JSON, directory / MODEL_NPZ
    hint = "Save the model again with avlab decode --save-model."
    for p in (jpath, npath):
        if not p.is_file():
            raise DecodeError(f"model file {p} is missing.", hint=hint)
    try:
        doc = _ModelFile.model_validate_json(jpath.read_bytes())
    except (OSError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise DecodeError(f"{jpath} is not a valid avlab model file: {first}.", hint=hint) from exc
    if doc.format_version > FORMAT_VERSION:
        raise ModelMismatchError(
            f"{jpath}: format version {doc.format_version} is newer than this avlab reads.",
            hint="Upgrade avlab.",
        )
    cls = decoder_class(doc.class_name, source=jpath)
    try:
        decoder = cls(**_decode(doc.params, jpath))
    except TypeError as exc:
        raise ModelMismatchError(
            f"{jpath}: parameters do not fit {doc.class_name}: {exc}.",
            hint="Load the model with the avlab version that saved it.",
        ) from exc
    try:
        with np.load(npath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DecodeError(f"{npath} is corrupt: {exc}.", hint=hint) from exc
    missing = sorted(set(doc.arrays) - set(arrays))
    if missing:
        raise DecodeError(f"{npath} lacks the arrays {missing}.", hint=hint)
    try:
        decoder._set_state_arrays(arrays)
    except AvlabError:
        raise
    except (KeyError, ValueError) as exc:
        raise DecodeError(f"{npath}: cannot restore {doc.class_name}: {exc}.", hint=hint) from exc
    logger.info("loaded %s from %s", doc.class_name, directory)
    return decoder, doc.metadata


def check_compatible(
    metadata: ModelMetadata,
    *,
    ch_names: Sequence[str],
    sfreq: float,
    preprocessing: BaseModel | Mapping[str, Any] | None = None,
    envelope: BaseModel | Mapping[str, Any] | None = None,
) -> None:
    """Refuse data that differ from what the model was trained on.

    Parameters
    ----------
    metadata : ModelMetadata
        From :func:`load_model`.
    ch_names : sequence of str
        EEG channels of the new data, in row order.
    sfreq : float
        Sampling rate of the new data, Hz.
    preprocessing, envelope : pydantic model | mapping | None
        Settings of the new data (None = not checked).

    Raises
    ------
    ModelMismatchError
        Naming the first differing field.
    """
    hint = "Preprocess the new data like the training data, or retrain the model."
    if list(ch_names) != list(metadata.ch_names):
        a, b = list(metadata.ch_names), list(ch_names)
        if len(a) != len(b):
            what = f"{len(b)} channels, the model expects {len(a)}"
        else:
            i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
            what = f"channel {i} is {b[i]!r}, the model expects {a[i]!r}"
        raise ModelMismatchError(f"ch_names differ: {what}.", hint=hint)
    if abs(float(sfreq) - metadata.sfreq) > 1e-6:
        raise ModelMismatchError(
            f"sfreq differs: data at {sfreq:g} Hz, the model at {metadata.sfreq:g} Hz.", hint=hint
        )
    for label, new, old in (
        ("preprocessing", preprocessing, metadata.preprocessing),
        ("envelope", envelope, metadata.envelope),
    ):
        if new is None:
            continue
        new_d = _as_dict(new)
        for key in sorted(set(new_d) | set(old)):
            if new_d.get(key) != old.get(key):
                raise ModelMismatchError(
                    f"{label}.{key} differs: data {new_d.get(key)!r}, model {old.get(key)!r}.",
                    hint=hint,
                )
