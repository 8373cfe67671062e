"""Separate and steer the two-talker trials of a BIDS dataset (``avlab separate run``).

For every two-talker trial (the same trials :func:`avlab.decode.load_bids_trials`
decodes), the participant's microphone recording (``beh/*_recording-microphone_audio``,
placed on the EEG time line by its ``StartTime``) is cut out, mixed to mono and
separated. Then, per decision window:

- ``truth``: the separated talker that is the attended one (whole-trial envelope
  match with the attended stimulus): the upper bound and the label;
- ``eeg``: the separated talker whose envelope follows the attended envelope
  reconstructed from EEG by a backward decoder trained on the subject's *other*
  trials (leave-one-trial-out, the folds of ``avlab decode``); the decoder's
  accuracy with the clean stimulus envelopes on the same windows is kept beside it;
- ``gaze``: the separated talker on the side (left/right microphone level
  difference) of the face looked at most.

Intrusive scores (SI-SDR, STOI, ESTOI, PESQ) take the attended talker's own signal
as reference: the ``recording-talkers`` audio when the dataset has it (the
simulator's clean talker channels). The reference-free SRMR needs none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from avlab._logging import logger
from avlab.errors import OutputError
from avlab.separate._audio import resample as _to
from avlab.separate.inference import SeparateError
from avlab.separate.steer import (
    decoder_correct,
    eeg_choices,
    gaze_choices,
    output_envelopes,
    output_sides,
    stitch,
    truth_labels,
)

__all__ = ["SteerOptions", "SteerResult", "SteerWindow", "TrialScores", "steer_bids"]

METHODS = ("eeg", "gaze", "truth")
_PAD_S = 1.0  # audio separated before and after a trial (filter edges), s
_OUT_RATE = 16000  # rate of written audio and of the scores, Hz


class SteerOptions(BaseModel):
    """Settings of ``avlab separate run`` on a BIDS dataset."""

    model_config = ConfigDict(extra="forbid")

    steer: list[str] = Field(default_factory=lambda: list(METHODS))
    windows: list[float] = Field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0])
    audio_window_s: float = Field(default=5.0, gt=0, description="steering window of the audio")
    fade_ms: float = Field(default=50.0, ge=0)
    subjects: list[str] | None = None
    task: str | None = None
    write_audio: bool = True
    all_audio: bool = False
    pesq: bool = True
    mic_label: str | None = None
    score_excerpt_s: float = Field(
        default=10.0,
        ge=0,
        description="STOI/ESTOI/PESQ/SRMR on this much of each trial's "
        "middle, s (0: all); SI-SDR always on the whole trial",
    )


class SteerWindow(BaseModel):
    """One decision window of one trial."""

    subject: str
    run: str
    trial: int
    segment: int
    window_s: float
    start_s: float
    truth: int
    eeg_choice: int | None = None
    decoder_correct: bool | None = None
    gaze_choice: int | None = None


class TrialScores(BaseModel):
    """Scores of one trial (attended talker as reference), per signal."""

    subject: str
    run: str
    trial: int
    segment: int
    duration_s: float
    level_diff_db: list[float]
    scores: dict[str, dict[str, float]]  # signal -> metric -> value


class SteerResult(BaseModel):
    """Everything ``avlab separate run`` measured on a dataset."""

    windows: list[SteerWindow]
    trials: list[TrialScores]
    skipped: list[str]
    mode: str
    steer: list[str]

    def accuracy(self) -> list[dict[str, float]]:
        """Per window length: steering accuracy (eeg, gaze) and decoder accuracy, with counts."""
        out = []
        for w in sorted({x.window_s for x in self.windows}):
            rows = [x for x in self.windows if x.window_s == w]
            d: dict[str, float] = {"window_s": w, "n_windows": len(rows)}
            eeg = [x for x in rows if x.eeg_choice is not None]
            if eeg:
                d["eeg_steering"] = float(np.mean([x.eeg_choice == x.truth for x in eeg]))
                d["eeg_decoder_clean"] = float(np.mean([bool(x.decoder_correct) for x in eeg]))
                d["n_eeg"] = len(eeg)
            gz = [x for x in rows if x.gaze_choice is not None and x.gaze_choice >= 0]
            if gz:
                d["gaze_steering"] = float(np.mean([x.gaze_choice == x.truth for x in gz]))
                d["n_gaze"] = len(gz)
            out.append(d)
        return out

    def mean_scores(self) -> dict[str, dict[str, float]]:
        """Mean of each metric per signal over trials (NaN ignored)."""
        sig: dict[str, dict[str, list[float]]] = {}
        for t in self.trials:
            for s, m in t.scores.items():
                for k, v in m.items():
                    sig.setdefault(s, {}).setdefault(k, []).append(v)
        return {
            s: {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in m.items()}
            for s, m in sig.items()
        }


@dataclass
class _Audio:
    data: np.ndarray  # (n, ch), recorded units
    fs: float  # nominal rate, Hz
    start: float  # s on the EEG time line
    fs_eff: float  # measured rate (SamplingFrequencyEffective), Hz: places samples in time


def _read_audio(path: Path) -> _Audio:
    import json

    side = path.with_name(path.name.replace(".flac", ".json").replace(".wav", ".json"))
    try:
        meta = json.loads(side.read_text())
        data, fs = sf.read(path, dtype="float64", always_2d=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise SeparateError(
            f"cannot read {path} or its sidecar {side.name} ({exc}).",
            "re-run 'avlab bids convert' for this run.",
        ) from exc
    scale = float(meta.get("AmplitudeScale", 1.0)) or 1.0
    start = meta.get("StartTime")
    if start is None:
        raise SeparateError(
            f"{side}: no StartTime; the audio cannot be placed on the EEG time line.",
            "re-run 'avlab bids convert' for this run.",
        )
    eff = float(meta.get("SamplingFrequencyEffective") or fs)
    return _Audio(data / scale, float(fs), float(start), eff)


def _cut(a: _Audio, t0: float, dur: float) -> np.ndarray:
    """Cut ``dur`` s of ``a`` from ``t0`` (EEG time), zeros outside the recording, (n, ch).

    Sample positions use the measured rate (a microphone's clock drifts against the
    EEG's); the result is treated as audio at the nominal rate.
    """
    n = int(round(dur * a.fs))
    i0 = int(round((t0 - a.start) * a.fs_eff))
    out = np.zeros((n, a.data.shape[1]))
    lo, hi = max(0, i0), min(a.data.shape[0], i0 + n)
    if hi > lo:
        out[lo - i0 : hi - i0] = a.data[lo:hi]
    return out


def _run_audio(
    base: Path, stem: str, task: str, run: str, mic_label: str | None
) -> tuple[_Audio, _Audio | None]:
    """Find the run's microphone recording and, when present, the clean talker channels."""
    pre = f"{stem}_task-{task}" + (f"_run-{run}" if run else "")
    files = [f for f in sorted((base / "beh").glob(f"{pre}_recording-*_audio.*"))
             if f.suffix in (".flac", ".wav")]  # fmt: skip
    label = {f: f.name.split("_recording-")[1].split("_")[0] for f in files}
    want = [f for f in files if label[f] == (mic_label or "microphone")]
    if not want and mic_label is None:  # a real lab: recording-<device name>
        want = [f for f in files if label[f] != "talkers"]
    if len(want) != 1:
        have = ", ".join(sorted(label.values())) or "none"
        raise SeparateError(
            f"{base / 'beh'}: {'no' if not want else 'more than one'} microphone recording "
            f"for {pre} (recordings: {have}).",
            "pass --mic-label with the recording's label; separation needs the "
            "participant's microphone.",
        )
    refs = [f for f in files if label[f] == "talkers"]
    return _read_audio(want[0]), (_read_audio(refs[0]) if refs else None)


def _recon_per_trial(trials: Sequence[Any], use_eeg: bool) -> dict[int, np.ndarray]:
    """EEG reconstruction of every trial by a decoder fitted on the others (LOTO)."""
    from avlab.decode.folds import make_folds
    from avlab.decode.linear import BackwardDecoder

    if not use_eeg:
        return {}
    out: dict[int, np.ndarray] = {}
    from avlab.decode.base import DecodeError

    try:
        folds = make_folds(trials, "loto")
    except DecodeError as exc:  # one trial per subject: no training data
        logger.warning("EEG steering not possible: %s", exc)
        return {}
    for f in folds:
        tr = [trials[i] for i in f.train]
        if not tr:
            continue
        dec = BackwardDecoder(sfreq=trials[0].sfreq)
        dec.fit(
            [t.eeg for t in tr],
            [t.envelopes[0] for t in tr],
            [t.envelopes[1] for t in tr],
            groups=[t.group for t in tr],
        )
        for i, rec in zip(
            f.test, dec.predict_envelope([trials[i].eeg for i in f.test]), strict=True
        ):
            out[int(i)] = rec
    return out


def _scores(
    sig: np.ndarray, ref: np.ndarray, mix: np.ndarray, pesq: bool, excerpt_s: float
) -> dict[str, float]:
    """SI-SDR(i) over the whole trial; STOI, ESTOI, PESQ, SRMR over the middle excerpt."""
    from avlab.separate import metrics

    d = {"si_sdr_db": metrics.si_sdr(sig, ref)}
    d["si_sdri_db"] = d["si_sdr_db"] - metrics.si_sdr(mix, ref)
    n = sig.size
    m = n if excerpt_s <= 0 else min(n, int(excerpt_s * _OUT_RATE))
    a = (n - m) // 2
    s, r = sig[a : a + m], ref[a : a + m]
    d["stoi"] = metrics.stoi(s, r, _OUT_RATE)
    d["estoi"] = metrics.stoi(s, r, _OUT_RATE, extended=True)
    d["srmr"] = metrics.srmr(s, _OUT_RATE)
    if pesq:
        d["pesq"] = metrics.pesq_score(s, r, _OUT_RATE)
    return d


def steer_bids(
    root: Path,
    out: Path,
    separate: Callable[[np.ndarray, int], np.ndarray],
    options: SteerOptions,
    *,
    mode: str = "noncausal",
    progress: Callable[[str, int, int], None] | None = None,
) -> SteerResult:
    """Separate and steer every two-talker trial of a BIDS dataset.

    Parameters
    ----------
    root : Path
        BIDS root written by ``avlab bids convert``.
    out : Path
        Folder for the audio (``audio/``); the caller writes tables and the report.
    separate : callable
        ``separate(audio (n,), srate) -> (2, n)``, e.g. ``Separator(...).separate``.
    options : SteerOptions
    mode : str
        Name of the network, for the result.
    progress : callable or None
        ``progress(stage, done, total)``.

    Returns
    -------
    SteerResult
    """
    from avlab.decode import load_bids_trials
    from avlab.decode.base import window_bounds

    bad = [m for m in options.steer if m not in METHODS]
    if bad:
        raise SeparateError(
            f"unknown --steer {', '.join(bad)}.", f"choose from {', '.join(METHODS)}."
        )
    data = load_bids_trials(root, subjects=options.subjects, task=options.task, progress=progress)
    trials = data.trials
    skipped = [str(s) for s in data.skipped]
    recon: dict[int, np.ndarray] = {}
    for subj in data.subjects:
        idx = [i for i, t in enumerate(trials) if t.subject == subj]
        sub = [trials[i] for i in idx]
        r = _recon_per_trial(sub, "eeg" in options.steer)
        if "eeg" in options.steer and not r:
            skipped.append(f"sub-{subj}: EEG steering needs at least two trials")
        recon.update({idx[k]: v for k, v in r.items()})
    audio_dir = out / "audio"
    if options.write_audio:
        audio_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[str, tuple[_Audio, _Audio | None]] = {}
    windows: list[SteerWindow] = []
    scores: list[TrialScores] = []
    for ti, t in enumerate(trials):
        stem = f"sub-{t.subject}" + (f"_ses-{t.session}" if t.session else "")
        base = root / f"sub-{t.subject}" / (f"ses-{t.session}" if t.session else "")
        task = str(t.extra.get("task", ""))
        run_key = f"{stem}_task-{task}" + (f"_run-{t.run}" if t.run else "")
        if run_key not in cache:
            cache = {run_key: _run_audio(base, stem, task, t.run, options.mic_label)}
        mic_a, ref_a = cache[run_key]
        n_t, sfreq = t.eeg.shape[1], t.sfreq
        dur = n_t / sfreq
        seg = _cut(mic_a, t.onset_s - _PAD_S, dur + 2 * _PAD_S)  # (n, ch)
        fs = int(round(mic_a.fs))
        mono = seg.mean(axis=1)
        sep = separate(mono, fs)  # (2, n)
        env = output_envelopes(
            sep, fs, n_t, sfreq, data.envelope, data.preprocessing, start_offset_s=_PAD_S
        )
        truth = truth_labels(env, t.envelopes)
        inner = slice(int(round(_PAD_S * fs)), int(round(_PAD_S * fs)) + int(round(dur * fs)))
        sep_t, mics_t = sep[:, inner], seg[inner].T
        level = output_sides(sep_t, mics_t) if mics_t.shape[0] >= 2 else np.zeros(2)
        sides = tuple(t.extra.get("sides", ("", "")))
        on_left = [s == "left" for s in sides]
        why_no_gaze = (
            "no screen gaze" if t.gaze is None
            else "one microphone channel (sides need a left and a right one)"
            if mics_t.shape[0] < 2
            else f"talkers not on opposite sides ({', '.join(sides)})"
            if sorted(sides) != ["left", "right"]
            else ""
        )  # fmt: skip
        gaze_ok = "gaze" in options.steer and not why_no_gaze
        if "gaze" in options.steer and why_no_gaze:
            skipped.append(f"{run_key} trial {t.trial}: no gaze steering: {why_no_gaze}")
        rec = recon.get(ti)
        choices: dict[str, np.ndarray] = {}
        for w in options.windows:
            b = window_bounds(n_t, sfreq, w)
            eeg_c = eeg_choices(rec, env, b) if rec is not None else None
            dec_c = decoder_correct(rec, t.envelopes, b) if rec is not None else None
            gz_c = gaze_choices(t.gaze, on_left, level, b) if gaze_ok else None  # type: ignore[arg-type]
            for i, (a, _) in enumerate(b):
                windows.append(
                    SteerWindow(
                        subject=t.subject,
                        run=t.run,
                        trial=t.trial,
                        segment=t.segment,
                        window_s=w,
                        start_s=t.onset_s + a / sfreq,
                        truth=truth,
                        eeg_choice=None if eeg_c is None else int(eeg_c[i]),
                        decoder_correct=None if dec_c is None else bool(dec_c[i]),
                        gaze_choice=None if gz_c is None else int(gz_c[i]),
                    )
                )
        b = window_bounds(n_t, sfreq, options.audio_window_s)
        if "truth" in options.steer:
            choices["truth"] = np.full(len(b), truth)
        if "eeg" in options.steer and rec is not None:
            choices["eeg"] = eeg_choices(rec, env, b)
        if gaze_ok:
            choices["gaze"] = gaze_choices(t.gaze, on_left, level, b)  # type: ignore[arg-type]
        sep16 = _to(sep_t, fs, _OUT_RATE)
        mix16 = _to(mics_t.mean(axis=0), fs, _OUT_RATE)
        win = int(round(options.audio_window_s * _OUT_RATE))
        fade = int(options.fade_ms * 1e-3 * _OUT_RATE)
        steered = {m: stitch(sep16, c, win, fade) for m, c in choices.items()}
        sig_scores: dict[str, dict[str, float]] = {}
        if ref_a is not None:
            ref = _cut(ref_a, t.onset_s, dur).T  # (talkers, n)
            ref16 = _to(ref, ref_a.fs, _OUT_RATE)
            renv = output_envelopes(ref, ref_a.fs, n_t, sfreq, data.envelope, data.preprocessing)
            att = ref16[0 if truth_labels(renv[:2], t.envelopes) == 0 else 1]
            n = min(att.size, mix16.size)
            sigs = {"mixture": mix16[:n]} | {f"steered-{m}": s[:n] for m, s in steered.items()}
            if np.any(att[:n]):
                for name, s in sigs.items():
                    sig_scores[name] = _scores(
                        s, att[:n], mix16[:n], options.pesq, options.score_excerpt_s
                    )
            else:
                skipped.append(f"{run_key} trial {t.trial}: the talkers recording is silent "
                               "here; no scores")  # fmt: skip
        scores.append(
            TrialScores(
                subject=t.subject,
                run=t.run,
                trial=t.trial,
                segment=t.segment,
                duration_s=dur,
                level_diff_db=[float(x) for x in level],
                scores=sig_scores,
            )
        )
        if options.write_audio:
            tag = f"{run_key}_trial-{t.trial:02d}" + (f"_seg-{t.segment}" if t.segment else "")
            outs = {f"steered-{m}": s for m, s in steered.items()}
            if options.all_audio:
                outs |= {"mixture": mix16, "talker1": sep16[0], "talker2": sep16[1]}
            for name, s in outs.items():
                peak = max(1.0, float(np.abs(s).max()))
                path = audio_dir / f"{tag}_{name}.flac"
                try:
                    sf.write(path, s / peak, _OUT_RATE, subtype="PCM_16")
                except (OSError, sf.LibsndfileError) as exc:
                    raise OutputError(
                        f"cannot write {path}: {exc}.", "free disk space or choose another --out."
                    ) from exc
        if progress is not None:
            progress("separate", ti + 1, len(trials))
    return SteerResult(
        windows=windows, trials=scores, skipped=skipped, mode=mode, steer=list(options.steer)
    )
