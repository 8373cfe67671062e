"""BIDS runs → per-trial EEG, talker envelopes and gaze at 64 Hz (design note §1).

For each EEG run of a BIDS dataset (``avlab bids convert`` or any dataset shaped
like it), :func:`load_bids_trials`:

1. reads the run with ``mne_bids.read_raw_bids`` (bad channels from
   ``channels.tsv``), keeps the good EEG channels, re-references, band-passes and
   resamples the *whole run* (:class:`~avlab.decode.config.Preprocessing`), so
   trials have no filter edges;
2. cuts one trial per ``trial`` number of the ``speech`` rows of ``events.tsv``:
   two talkers (``role`` target/masker, ``stim_file`` relative to
   ``<root>/stimuli/``), from the later onset to the earlier end of the two stimuli
   (the span both talkers speak; the onsets are shared in avlab's datasets). EEG
   sample ``i0 = round(onset * sfreq)`` starts the trial, and each envelope is
   computed from ``i0 / sfreq - onset`` s into its stimulus, so envelope and EEG
   share one sample grid exactly (no ±half-sample rounding);
3. splits attention-switch trials at their ``switch`` rows into segments with one
   attended talker each, dropping ``switch_guard_s`` after every switch (the
   response to the new talker is still building up); segments keep the trial
   number and group;
4. adds gaze from ``…_recording-eye1screen_physio.tsv.gz`` when present: per
   output sample, the fraction of valid (finite, non-blink) gaze samples inside
   each talker's face box; NaN where there is no valid sample. Face centres come
   from the ``face_x``/``face_y`` columns, else from ``side``
   (:data:`avlab.protocol.planner.SIDE_POSITION`); boxes are 0.45 × 0.45 screen
   heights (:data:`avlab.devices.screen.DEFAULT_FACES`).

Runs that cannot be decoded (speech in noise, conversation: fewer than two talkers
per trial) are skipped with a reason in :attr:`DecodeData.skipped`. Trials over a
bad EEG span (``BAD_ACQ_SKIP``) are skipped too.

Channel sets that differ between runs or subjects are **intersected**, in the
first run's order, with a logged warning naming the dropped channels: pooled models
(leave-one-subject-out) need one channel order, and dropping a few channels costs
less than dropping a subject. An empty intersection is an error.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avlab._logging import logger
from avlab.decode.base import DecodeError, Trial
from avlab.decode.config import EnvelopeConfig, Preprocessing
from avlab.decode.envelope import stimulus_envelope

__all__ = ["DecodeData", "SkippedRun", "load_bids_trials"]

#: ``progress(stage, done, total)``, called after each run with stage ``"load"``.
ProgressFn = Callable[[str, int, int], None]
_EEG_EXTENSIONS = [".vhdr", ".edf", ".bdf", ".set", ".fif", ".eeg"]


@dataclass(frozen=True)
class SkippedRun:
    """A run (or one trial of it) that was not decoded.

    Attributes
    ----------
    path : str
        The run's ``events.tsv``, relative to the dataset root.
    reason : str
        Why it was skipped.
    trial : int | None
        The trial, when only that trial was skipped.
    """

    path: str
    reason: str
    trial: int | None = None

    def __str__(self) -> str:
        where = self.path if self.trial is None else f"{self.path}, trial {self.trial}"
        return f"{where}: {self.reason}"


@dataclass
class DecodeData:
    """Trials of a BIDS dataset, ready for the decoders.

    Attributes
    ----------
    trials : list of Trial
        All trials (segments of attention-switch trials) in subject, run and trial
        order; all share one channel list.
    infos : dict of str to mne.Info
        Per subject, the measurement info of the kept channels at ``sfreq`` (with
        electrode positions when the dataset has ``electrodes.tsv``), for topomaps.
    skipped : list of SkippedRun
        Runs and trials left out, with the reason.
    preprocessing : Preprocessing
        EEG preprocessing applied.
    envelope : EnvelopeConfig
        Envelope method applied.
    dropped_channels : dict of str to list of str
        Per subject, good EEG channels dropped because another run or subject lacks them.
    """

    trials: list[Trial]
    infos: dict[str, Any]
    skipped: list[SkippedRun] = field(default_factory=list)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    envelope: EnvelopeConfig = field(default_factory=EnvelopeConfig)
    dropped_channels: dict[str, list[str]] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """Subjects with at least one trial, in order."""
        return list(dict.fromkeys(t.subject for t in self.trials))

    @property
    def ch_names(self) -> list[str]:
        """Channel names shared by all trials (empty without trials)."""
        return list(self.trials[0].ch_names) if self.trials else []


@dataclass(frozen=True)
class _Talker:
    name: str
    stim_file: str
    onset: float  # s, EEG time line
    side: str
    face: tuple[float, float] | None  # centre, screen heights (x right, y up)


@dataclass(frozen=True)
class _Plan:
    """One two-talker trial of events.tsv; talker 0 is attended at the start."""

    trial: int
    start: float  # s
    end: float  # s
    talkers: tuple[_Talker, _Talker]
    switches: tuple[tuple[float, int], ...]  # (onset s, index of the newly attended talker)

    def segments(self, i0: int, n: int, sfreq: float, guard_s: float) -> list[tuple[int, int, int]]:
        """(first, stop, attended talker) sample ranges relative to ``i0``."""
        out, a, k = [], 0, 0
        for t, new in self.switches:
            b = min(n, max(0, int(round(t * sfreq)) - i0))
            if b > a:
                out.append((a, b, k))
            a, k = max(a, b + int(round(guard_s * sfreq))), new
        if n > a:
            out.append((a, n, k))
        return [s for s in out if s[1] - s[0] >= 2]


@dataclass(frozen=True)
class _Gaze:
    t: np.ndarray  # s, EEG time line
    xy: np.ndarray  # (n, 2) screen px, origin top-left, y down; NaN when invalid
    size_px: tuple[float, float]


def load_bids_trials(
    root: Path | str,
    *,
    subjects: Sequence[str] | None = None,
    task: str | None = None,
    preprocessing: Preprocessing | None = None,
    envelope: EnvelopeConfig | None = None,
    switch_guard_s: float = 0.25,
    progress: ProgressFn | None = None,
) -> DecodeData:
    """Load the two-talker trials of a BIDS dataset (see the module docstring).

    Parameters
    ----------
    root : Path | str
        BIDS root (``dataset_description.json``, ``sub-*/``, ``stimuli/``).
    subjects : sequence of str | None
        Subject labels (without ``sub-``); None for all.
    task : str | None
        Only runs of this task; None for all.
    preprocessing : Preprocessing | None
        EEG preprocessing (default 1–9 Hz, average reference, 64 Hz).
    envelope : EnvelopeConfig | None
        Envelope method (default Hilbert^0.3).
    switch_guard_s : float
        Time dropped after each attention switch, s.
    progress : callable | None
        ``progress("load", done_runs, total_runs)`` after each run.

    Returns
    -------
    data : DecodeData

    Raises
    ------
    DecodeError
        ``root`` is not a BIDS dataset; a requested subject or the task is missing;
        a stimulus file is missing; no trial can be decoded; the runs share no
        good EEG channel; a reference channel is missing.
    """
    prep = preprocessing if preprocessing is not None else Preprocessing()
    env_cfg = envelope if envelope is not None else EnvelopeConfig()
    if not switch_guard_s >= 0:
        raise DecodeError(f"switch_guard_s={switch_guard_s} must be >= 0 s.", hint="Use 0.25.")
    root = Path(root)
    runs = _find_runs(root, subjects, task)
    trials: list[Trial] = []
    infos: dict[str, Any] = {}
    skipped: list[SkippedRun] = []
    for i, bp in enumerate(runs):
        events = Path(str(bp.copy().update(suffix="events", extension=".tsv").fpath))
        rel = events.relative_to(root).as_posix()
        n_skip = len(skipped)
        plans = _plan_trials(events, rel, skipped) if events.is_file() else []
        if plans:
            eeg, info, bad = _read_eeg(bp, prep)
            infos.setdefault(str(bp.subject), info)
            gaze = _read_gaze(events, rel)
            trials += _cut(
                root, bp, rel, plans, eeg, info, bad, gaze, prep, env_cfg, switch_guard_s, skipped
            )
        else:  # one line for the run instead of one per trial
            why = [s.reason for s in skipped[n_skip:]] or ["no events.tsv"]
            del skipped[n_skip:]
            skipped.append(SkippedRun(rel, f"no two-talker trial ({why[0]})"))
            logger.info("decode: skipped %s: %s", rel, skipped[-1].reason)
        if progress is not None:
            progress("load", i + 1, len(runs))
    if not trials:
        why = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:4])
        raise DecodeError(
            f"no two-talker trial in {root} ({len(runs)} EEG run(s); {why}).",
            hint="Decoding needs runs with two simultaneous talkers (speech rows with role "
            "target and masker in events.tsv), e.g. the competing-talkers protocol.",
        )
    _assign_groups(trials)
    dropped = _common_channels(trials, infos)
    logger.info("decode: %d trials of %d subject(s) loaded from %s", len(trials), len(infos), root)
    return DecodeData(trials, infos, skipped, prep, env_cfg, dropped)


def _find_runs(root: Path, subjects: Sequence[str] | None, task: str | None) -> list[Any]:
    from mne_bids import find_matching_paths, get_entity_vals

    if not (root / "dataset_description.json").is_file():
        raise DecodeError(
            f"{root} is not a BIDS dataset (no dataset_description.json).",
            hint="Pass the BIDS root written by 'avlab bids convert'.",
        )
    have = sorted(get_entity_vals(root, "subject"))
    want = None if subjects is None else [str(s).removeprefix("sub-") for s in subjects]
    missing = [s for s in want or [] if s not in have]
    if missing:
        raise DecodeError(
            f"subject(s) {', '.join(missing)} not in {root} (has: {', '.join(have) or 'none'}).",
            hint="Pick --subjects among the dataset's sub-* folders.",
        )
    runs = find_matching_paths(
        root, subjects=want, tasks=task, datatypes="eeg", suffixes="eeg", extensions=_EEG_EXTENSIONS
    )
    by_stem = {bp.copy().update(extension=None).basename: bp for bp in runs}  # .vhdr and .eeg
    runs = [by_stem[k] for k in sorted(by_stem)]
    if not runs:
        tasks = sorted(get_entity_vals(root, "task"))
        raise DecodeError(
            f"no EEG run in {root}"
            + (f" for task {task!r}" if task else "")
            + f" (tasks: {', '.join(tasks) or 'none'}).",
            hint="Check --task and --subjects.",
        )
    return runs


def _plan_trials(events: Path, rel: str, skipped: list[SkippedRun]) -> list[_Plan]:
    """Two-talker trials of one events.tsv (reasons for the rest go to ``skipped``)."""
    ev = pd.read_csv(events, sep="\t", na_values=["n/a"], keep_default_na=False)
    need = {"onset", "duration", "trial_type", "trial", "role", "stim_file"}
    if not need <= set(ev.columns) or not (ev["trial_type"] == "speech").any():
        miss = sorted(need - set(ev.columns))
        skipped.append(
            SkippedRun(rel, f"no {', '.join(miss)} column" if miss else "no speech rows")
        )
        return []
    plans: list[_Plan] = []
    speech = ev[ev["trial_type"] == "speech"]
    for trial, rows in speech.groupby("trial", sort=True):
        tgt, msk = rows[rows["role"] == "target"], rows[rows["role"] == "masker"]
        if len(tgt) != 1 or len(msk) != 1 or len(rows) != 2:
            roles = sorted(rows["role"].astype(str))
            why = f"{len(rows)} speech row(s), roles {roles}; need one target and one masker"
            skipped.append(SkippedRun(rel, why, int(trial)))
            continue
        talkers = tuple(_talker(r, i) for i, (_, r) in enumerate(pd.concat([tgt, msk]).iterrows()))
        if any(not tk.stim_file for tk in talkers):
            skipped.append(SkippedRun(rel, "speech row without stim_file", int(trial)))
            continue
        start = max(tk.onset for tk in talkers)
        end = min(float(r["onset"]) + float(r["duration"]) for _, r in rows.iterrows())
        switches: list[tuple[float, int]] = []
        sw = ev[(ev["trial_type"] == "switch") & (ev["trial"] == trial)].sort_values("onset")
        names = [tk.name for tk in talkers]
        for _, r in sw.iterrows():
            who = str(r.get("attended_talker", ""))
            if who not in names:
                switches = []
                why = f"switch at {r['onset']} s to {who!r}, not a talker of the trial {names}"
                skipped.append(SkippedRun(rel, why, int(trial)))
                break
            switches.append((float(r["onset"]), names.index(who)))
        else:
            if end - start > 0:
                plans.append(_Plan(int(trial), start, end, talkers, tuple(switches)))  # type: ignore[arg-type]
    return plans


def _talker(row: pd.Series, i: int) -> _Talker:
    def text(col: str) -> str:
        v = row.get(col)
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    fx, fy = row.get("face_x"), row.get("face_y")
    face = None
    if fx is not None and fy is not None and np.isfinite(fx) and np.isfinite(fy):
        face = (float(fx), float(fy))
    return _Talker(
        text("talker") or f"talker{i}", text("stim_file"), float(row["onset"]), text("side"), face
    )


def _read_eeg(bp: Any, prep: Preprocessing) -> tuple[np.ndarray, Any, list[tuple[float, float]]]:
    """Preprocessed EEG of one run (n_channels, n_times) V, its info and bad spans (s)."""
    from mne_bids import read_raw_bids

    with warnings.catch_warnings():
        # mne-bids warns about files and columns it does not use (physio, extra columns)
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = read_raw_bids(bp, verbose="ERROR")
    raw.load_data(verbose="ERROR").pick("eeg", exclude="bads")
    if prep.reference is not None:
        ref = "average" if prep.reference == "average" else list(prep.reference)
        miss = [c for c in ref if c not in raw.ch_names] if ref != "average" else []
        if miss:
            raise DecodeError(
                f"reference channel(s) {', '.join(miss)} not among the good EEG channels "
                f"of {bp.basename}.",
                hint="Use --reference average or name good channels (channels.tsv status).",
            )
        raw.set_eeg_reference(ref, projection=False, verbose="ERROR")
    if prep.filters:
        raw.filter(**prep.filter_kwargs(), verbose="ERROR")
    raw.resample(prep.sfreq, method="polyphase", verbose="ERROR")
    t0 = raw.first_time if raw.annotations.orig_time is not None else 0.0
    bad = [
        (float(a["onset"]) - t0, float(a["onset"] + a["duration"]) - t0)
        for a in raw.annotations
        if str(a["description"]).lower().startswith("bad")
    ]
    return raw.get_data(), raw.info, bad


def _read_gaze(events: Path, rel: str) -> _Gaze | None:
    """Screen gaze of the run, or None (with an info line) when there is none."""
    from avlab.bids.physio import read_physio

    stem = events.name.removesuffix("_events.tsv")
    path = events.with_name(f"{stem}_recording-eye1screen_physio.tsv.gz")
    if not path.is_file():
        logger.info("decode: %s: no screen gaze (%s); no gaze features", rel, path.name)
        return None
    meta = _json(events.with_suffix(".json")).get("StimulusPresentation", {})
    size = meta.get("ScreenResolution")
    if not (isinstance(size, list) and len(size) == 2):
        logger.info(
            "decode: %s: events.json has no StimulusPresentation.ScreenResolution; "
            "no gaze features",
            rel,
        )
        return None
    _, cols = read_physio(path)
    xy = np.column_stack([cols["x_coordinate"], cols["y_coordinate"]])
    blink = cols.get("blink")
    if blink is not None:
        xy[np.nan_to_num(blink, nan=0.0) > 0] = np.nan
    return _Gaze(cols["timestamp"], xy, (float(size[0]), float(size[1])))


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _gaze_fraction(gaze: _Gaze, plan: _Plan, i0: int, n: int, sfreq: float) -> np.ndarray | None:
    """Fraction of valid gaze on each talker's face per output sample, shape (2, n)."""
    from avlab.devices.screen import DEFAULT_FACES
    from avlab.protocol.planner import SIDE_POSITION

    w, h = gaze.size_px
    centres = []
    for tk in plan.talkers:
        c = tk.face if tk.face is not None else SIDE_POSITION.get(tk.side)
        if c is None:
            return None
        centres.append((c[0] * h + w / 2.0, h / 2.0 - c[1] * h))  # height units -> px
    half = DEFAULT_FACES[0, 2:] * h / 2.0
    k = np.floor(gaze.t * sfreq + 0.5).astype(np.int64) - i0  # nearest output sample
    sel = (k >= 0) & (k < n) & np.all(np.isfinite(gaze.xy), axis=1)
    k, xy = k[sel], gaze.xy[sel]
    valid = np.bincount(k, minlength=n).astype(np.float64)
    out = np.empty((2, n))
    for j, c in enumerate(centres):
        inside = np.all(np.abs(xy - np.asarray(c)) <= half, axis=1)
        hits = np.bincount(k, weights=inside.astype(np.float64), minlength=n)
        out[j] = np.divide(hits, valid, out=np.full(n, np.nan), where=valid > 0)
    return out


def _cut(
    root: Path,
    bp: Any,
    rel: str,
    plans: list[_Plan],
    eeg: np.ndarray,
    info: Any,
    bad: list[tuple[float, float]],
    gaze: _Gaze | None,
    prep: Preprocessing,
    env_cfg: EnvelopeConfig,
    guard_s: float,
    skipped: list[SkippedRun],
) -> list[Trial]:
    """Cut the planned trials of one preprocessed run into Trial records."""
    sfreq = prep.sfreq
    ch_names = list(info["ch_names"])
    out: list[Trial] = []
    for p in plans:
        i0 = int(round(p.start * sfreq))
        n = int(np.floor((p.end - p.start) * sfreq + 1e-6))
        if i0 < 0 or i0 + n > eeg.shape[1]:
            skipped.append(SkippedRun(rel, "trial extends past the EEG recording", p.trial))
            continue
        if any(a < (i0 + n) / sfreq and b > i0 / sfreq for a, b in bad):
            skipped.append(SkippedRun(rel, "bad EEG span (BAD_*) in the trial", p.trial))
            continue
        envs = []
        for tk in p.talkers:
            path = root / "stimuli" / tk.stim_file
            if not path.is_file():
                raise DecodeError(
                    f"{rel}, trial {p.trial}: stim_file {tk.stim_file!r} not found under "
                    f"{root / 'stimuli'}.",
                    hint="Copy the protocol's stimuli into <root>/stimuli/ (avlab bids convert "
                    "does this), or fix the stim_file column.",
                )
            e = stimulus_envelope(
                path, sfreq, env_cfg, start_offset_s=i0 / sfreq - tk.onset, preprocessing=prep
            )
            envs.append(e[:n] if e.size >= n else np.pad(e, (0, n - e.size)))
        env = np.stack(envs)
        faces = None if gaze is None else _gaze_fraction(gaze, p, i0, n, sfreq)
        for seg, (a, b, k) in enumerate(p.segments(i0, n, sfreq, guard_s)):
            order = [k, 1 - k]
            x = eeg[:, i0 + a : i0 + b]
            att, un = p.talkers[k], p.talkers[1 - k]
            out.append(
                Trial(
                    eeg=np.ascontiguousarray(x - x.mean(axis=1, keepdims=True)),
                    envelopes=np.ascontiguousarray(env[order, a:b]),
                    sfreq=sfreq,
                    subject=str(bp.subject),
                    trial=p.trial,
                    group="",
                    ch_names=ch_names,
                    gaze=None if faces is None else np.ascontiguousarray(faces[order, a:b]),
                    session=str(bp.session or ""),
                    run=str(bp.run or ""),
                    segment=seg,
                    onset_s=(i0 + a) / sfreq,
                    talkers=(att.name, un.name),
                    stim_files=(att.stim_file, un.stim_file),
                    extra={
                        "task": str(bp.task or ""),
                        "sides": (att.side, un.side),
                        "n_switches": len(p.switches),
                    },
                )
            )
    return out


def _assign_groups(trials: list[Trial]) -> None:
    """Per subject, link trials that share any stimulus file (union-find) into one group."""
    for subject in dict.fromkeys(t.subject for t in trials):
        mine = [t for t in trials if t.subject == subject]
        parent: dict[str, str] = {}

        def find(a: str, parent: dict[str, str] = parent) -> str:
            while parent.setdefault(a, a) != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for t in mine:
            for f in t.stim_files[1:]:
                a, b = find(t.stim_files[0]), find(f)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        members: dict[str, set[str]] = {}
        for f in list(parent):
            members.setdefault(find(f), set()).add(f)
        for t in mine:
            t.group = "+".join(sorted(members[find(t.stim_files[0])]))


def _common_channels(trials: list[Trial], infos: dict[str, Any]) -> dict[str, list[str]]:
    """Reduce all trials and infos to the channels every run has (first run's order)."""
    import mne

    common = list(trials[0].ch_names)
    for names in {tuple(t.ch_names) for t in trials}:
        common = [c for c in common if c in set(names)]
    if not common:
        raise DecodeError(
            "the EEG runs share no good EEG channel.",
            hint="Decode subjects with different montages separately (--subjects).",
        )
    dropped: dict[str, set[str]] = {}
    for t in trials:
        if t.ch_names != common:
            dropped.setdefault(t.subject, set()).update(set(t.ch_names) - set(common))
            t.eeg = np.ascontiguousarray(t.eeg[[t.ch_names.index(c) for c in common]])
            t.ch_names = common
    for sub, info in infos.items():
        infos[sub] = mne.pick_info(info, [info["ch_names"].index(c) for c in common])
    for sub, chans in dropped.items():
        logger.warning(
            "decode: sub-%s: channel(s) %s dropped: not good EEG in every run and subject",
            sub,
            ", ".join(sorted(chans)),
        )
    return {s: sorted(c) for s, c in dropped.items()}
