"""``avlab decode`` end to end: load a BIDS dataset, evaluate decoders, write the report.

One function, :func:`decode_dataset`, does what the command does, so scripts and
the CLI share it:

1. :func:`avlab.decode.data.load_bids_trials` reads and preprocesses the EEG, the
   envelopes and the gaze of every two-talker trial;
2. :func:`avlab.decode.cv.evaluate` cross-validates each method (leave one trial,
   or one subject, out; trials that share stimuli are held out together), with
   the label-shuffle null control;
3. a forward model (TRF) fitted on all trials of each subject gives the response
   figure (weights over time and scalp maps);
4. :func:`avlab.decode.report.write_results` writes ``windows.csv``,
   ``summary.json``, ``figures/*.svg`` and ``report.html``;
5. with ``save_model``, each method is trained on all trials and saved
   (:mod:`avlab.decode.io`); with ``model``, a saved model is applied instead of
   training (no cross-validation: the model never saw these data).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from avlab._logging import logger
from avlab.decode.base import AttentionDecoder, DecodeError, Trial
from avlab.decode.config import EnvelopeConfig, Preprocessing
from avlab.decode.cv import DEFAULT_WINDOWS_S, EvalResult, evaluate, score_trials

__all__ = ["DecodeOptions", "DecodeOutcome", "decode_dataset", "make_decoder", "print_outcome"]

Method = Literal["linear", "trf", "cca", "cnn", "gaze", "fusion"]
#: Progress callback: (stage description, done, total).
StageProgress = Callable[[str, int, int], None]


class DecodeOptions(BaseModel):
    """What ``avlab decode`` was asked to do (stored in ``summary.json``)."""

    model_config = ConfigDict(extra="forbid")

    methods: list[Method] = Field(default_factory=lambda: ["linear"])
    subjects: list[str] | None = None
    task: str | None = None
    windows: tuple[float, ...] = DEFAULT_WINDOWS_S
    cv: Literal["loto", "loso"] = "loto"
    stimulus_disjoint: bool = False
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    envelope: EnvelopeConfig = Field(default_factory=EnvelopeConfig)
    null_shuffles: int = Field(default=1, ge=0, description="null repetitions per method")
    cnn_epochs: int = Field(default=15, ge=1)
    seed: int = Field(default=0, ge=0)
    n_jobs: int = Field(default=1, ge=1)
    save_model: Path | None = None
    model: Path | None = None


@dataclass
class DecodeOutcome:
    """What :func:`decode_dataset` produced."""

    out: Path
    report_html: Path
    summary: Any
    n_trials: int
    subjects: list[str]
    results: list[EvalResult] = field(default_factory=list)
    saved_models: list[Path] = field(default_factory=list)
    skipped: list[Any] = field(default_factory=list)


def make_decoder(method: Method, options: DecodeOptions) -> AttentionDecoder:
    """Build the unfitted decoder of one method with the options' rate and seed."""
    sfreq = options.preprocessing.sfreq
    if method == "linear":
        from avlab.decode.linear import BackwardDecoder

        return BackwardDecoder(sfreq=sfreq)
    if method == "trf":
        from avlab.decode.linear import ForwardTRF

        return ForwardTRF(sfreq=sfreq)
    if method == "cca":
        from avlab.decode.cca import CCADecoder

        return CCADecoder(sfreq=sfreq)
    if method == "cnn":
        from avlab.decode.cnn import CNNDecoder

        return CNNDecoder(sfreq=sfreq, max_epochs=options.cnn_epochs, seed=options.seed)
    if method == "gaze":
        from avlab.decode.gaze import GazeDecoder

        return GazeDecoder(sfreq=sfreq, random_state=options.seed)
    if method == "fusion":
        from avlab.decode.fusion import FusionDecoder
        from avlab.decode.gaze import GazeDecoder
        from avlab.decode.linear import BackwardDecoder

        return FusionDecoder(
            decoders=[
                BackwardDecoder(sfreq=sfreq),
                GazeDecoder(sfreq=sfreq, random_state=options.seed),
            ],
            windows=tuple(options.windows),
        )
    raise DecodeError(
        f"unknown method {method!r}.", hint="Use linear, trf, cca, cnn, gaze or fusion."
    )


def decode_dataset(
    root: Path | str,
    out: Path | str,
    options: DecodeOptions,
    *,
    progress: StageProgress | None = None,
) -> DecodeOutcome:
    """Evaluate (or apply) attention decoders on a BIDS dataset and write the report.

    Parameters
    ----------
    root : Path | str
        BIDS root written by ``avlab bids convert`` (or shaped like it).
    out : Path | str
        Output folder; an earlier result in it is replaced.
    options : DecodeOptions
    progress : callable (stage, done, total) | None
        Progress of loading and of each method's evaluation.

    Returns
    -------
    DecodeOutcome

    Raises
    ------
    DecodeError
        No decodable trial; a method needs gaze the dataset lacks.
    ModelMismatchError
        ``options.model`` was trained on other channels, rate or preprocessing.
    """
    from threadpoolctl import threadpool_limits

    # one BLAS thread: the ridge solves and GEMMs here are 2-4x faster single-threaded
    # (OpenBLAS threads spin on a busy machine); parallelism comes from --n-jobs workers
    with threadpool_limits(1):
        return _decode_dataset(Path(root), Path(out), options, progress)


def _decode_dataset(
    root: Path, out: Path, options: DecodeOptions, progress: StageProgress | None
) -> DecodeOutcome:
    from avlab.decode.data import load_bids_trials
    from avlab.decode.report import write_results

    t0 = time.monotonic()
    applied = None
    if options.model is not None:
        from avlab.decode.io import load_model

        applied = load_model(options.model)
        meta = applied[1]
        options = options.model_copy(
            update={
                "methods": [meta.method] if meta.method else options.methods,
                "preprocessing": Preprocessing.model_validate(meta.preprocessing),
                "envelope": EnvelopeConfig.model_validate(meta.envelope),
            }
        )

    def stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)

    data = load_bids_trials(
        root,
        subjects=options.subjects,
        task=options.task,
        preprocessing=options.preprocessing,
        envelope=options.envelope,
        progress=(lambda _s, d, n: progress("loading runs", d, n)) if progress else None,
    )
    trials = data.trials
    for skip in data.skipped:
        logger.warning("skipped %s", skip)
    has_gaze = all(t.gaze is not None for t in trials)
    results: list[EvalResult] = []
    saved: list[Path] = []
    if applied is not None:
        results.append(_apply(applied, trials, options, stage("applying the model")))
    else:
        for method in options.methods:
            decoder = make_decoder(method, options)
            if decoder.uses_gaze and not has_gaze:
                raise DecodeError(
                    f"method {method!r} needs screen-mapped gaze, and {root} has no "
                    "'recording-eye1screen' physio file for some runs.",
                    hint="Convert with 'avlab bids convert --screen-size W,H --screen-distance D', "
                    "or choose --method linear.",
                )
            results.append(
                evaluate(
                    trials,
                    decoder,
                    method=method,
                    cv=options.cv,
                    stimulus_disjoint=options.stimulus_disjoint,
                    windows=options.windows,
                    null_shuffles=options.null_shuffles,
                    seed=options.seed,
                    n_jobs=options.n_jobs,
                    progress=stage(f"{method}: cross-validation"),
                )
            )
            if options.save_model is not None:
                saved.append(_save(decoder, method, trials, data, options))
    figures = _trf_figures(data) if applied is None else {}
    config = {
        **options.model_dump(mode="json"),
        "bids_root": str(root),
        "n_trials": len(trials),
        "subjects": data.subjects,
        "skipped": [str(s) for s in data.skipped],
        "dropped_channels": data.dropped_channels,
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    paths = write_results(results, out, config=config, figures=figures, seed=options.seed,
                          overwrite=True)  # fmt: skip
    from avlab.decode.report import DecodeSummary

    summary = DecodeSummary.model_validate_json(paths.summary_json.read_text(encoding="utf-8"))
    return DecodeOutcome(
        out=out,
        report_html=paths.html,
        summary=summary,
        n_trials=len(trials),
        subjects=data.subjects,
        results=results,
        saved_models=saved,
        skipped=list(data.skipped),
    )


def _arrays(trials: Sequence[Trial]) -> tuple[list, list, list, list | None]:
    eeg = [t.eeg for t in trials]
    att = [t.envelopes[0] for t in trials]
    unatt = [t.envelopes[1] for t in trials]
    gaze = [t.gaze for t in trials] if all(t.gaze is not None for t in trials) else None
    return eeg, att, unatt, gaze


def _save(
    decoder: AttentionDecoder,
    method: str,
    trials: Sequence[Trial],
    data: Any,
    options: DecodeOptions,
) -> Path:
    """Train ``decoder`` on every trial (all subjects pooled) and save it."""
    from sklearn.base import clone

    from avlab.decode.io import metadata_for, save_model

    model = clone(decoder)
    eeg, att, unatt, gaze = _arrays(trials)
    model.fit(eeg, att, unatt, gaze=gaze, groups=[t.group for t in trials])
    meta = metadata_for(trials, method=method, preprocessing=data.preprocessing,
                        envelope=data.envelope)  # fmt: skip
    assert options.save_model is not None
    return save_model(model, options.save_model / method, metadata=meta, overwrite=True)


def _apply(
    applied: tuple[AttentionDecoder, Any],
    trials: Sequence[Trial],
    options: DecodeOptions,
    progress: Callable[[int, int], None] | None,
) -> EvalResult:
    """Score every trial with a saved model (no training) into an EvalResult."""
    from avlab.decode.io import check_compatible

    decoder, meta = applied
    check_compatible(meta, ch_names=trials[0].ch_names, sfreq=trials[0].sfreq,
                     preprocessing=options.preprocessing, envelope=options.envelope)  # fmt: skip
    result = score_trials(decoder, trials, method=meta.method or "model", windows=options.windows)
    if progress is not None:
        progress(1, 1)
    return result


def _trf_figures(data: Any) -> dict[str, Any]:
    """Forward-model response of each subject, averaged, as a figure (weights and maps)."""
    from avlab.decode.linear import ForwardTRF, plot_trf

    coefs = []
    trf = None
    for subject in data.subjects:
        sub = [t for t in data.trials if t.subject == subject]
        eeg, att, unatt, _ = _arrays(sub)
        trf = ForwardTRF(sfreq=data.preprocessing.sfreq).fit(
            eeg, att, unatt, groups=[t.group for t in sub]
        )
        coefs.append(trf.coef_)
    if trf is None:
        return {}
    trf.coef_ = np.mean(coefs, axis=0)
    info = data.infos.get(data.subjects[0])
    fig = plot_trf(trf, data.ch_names, montage_info=info)
    return {"trf": fig}


def print_outcome(outcome: DecodeOutcome, console: Any) -> None:
    """Print the summary tables (accuracy per window, MESD, null control)."""
    from avlab.decode.report import print_summary

    print_summary(outcome.summary, console)
    for path in outcome.saved_models:
        console.print(f"model saved: {path}", highlight=False)
