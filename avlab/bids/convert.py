"""``avlab bids convert``: session folders into one BIDS dataset.

For each session folder: plan where it lands (subject, session, task, run), decide
whether there is anything to do (an unchanged run is skipped, a changed one needs
``--overwrite``), then write EEG (:mod:`avlab.bids.eeg`), events
(:mod:`avlab.bids.events`), eye tracking (:mod:`avlab.bids.physio`) and participant
media (:mod:`avlab.bids.media`) on one time line (:mod:`avlab.bids.timeline`).
Dataset-level files (``dataset_description.json``, ``participants.tsv``, README,
CHANGES, ``.bidsignore``, ``stimuli/``) are merged, never clobbered, and the manifest
(``sourcedata/avlab/manifest.json``) is written last.

Idempotence: a run's fingerprint covers its inputs and the converter's options; the
manifest keeps it with the SHA-256 of every file written. Same fingerprint and
unchanged files: nothing to do. Crash safety: a run is entered in the manifest as
incomplete before its files are written; the next conversion removes the partial
files of an incomplete run before writing it again.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from avlab import __version__
from avlab._logging import logger
from avlab.bids._io import read_tsv, sha256_file, write_json, write_tsv
from avlab.bids.events import StimulusPresentation, build_events, load_plan, write_events
from avlab.bids.models import (
    BIDS_VERSION,
    HED_VERSION,
    BidsConflictError,
    BidsRun,
    BidsValidationError,
    DatasetManifest,
    LabInfo,
    RunManifest,
    StreamSync,
)
from avlab.bids.templates import Templates, load_templates
from avlab.bids.timeline import Timeline, eeg_stream
from avlab.errors import OutputError, SessionError
from avlab.session import Session

__all__ = ["ConvertOptions", "ConvertResult", "RunResult", "convert_sessions"]

#: Plan stream types -> BIDS modalities a run must have.
_REQUIRED = {"EEG": "eeg", "Gaze": "eyetrack", "Markers": "events", "Audio": "audio",
             "VideoFrames": "video"}  # fmt: skip


class ConvertOptions(BaseModel):
    """Options of one conversion (the command line's, as a model).

    Attributes
    ----------
    bids_root : Path
        The dataset folder (created if missing).
    task : str | None
        Task label for every session (default: the protocol's name without
        non-alphanumerics, ``recording`` for a session without a protocol).
    format : {"BrainVision", "EDF"}
        EEG file format.
    overwrite : bool
        Replace runs whose inputs or files changed.
    deidentify : bool
        Pseudonymous subject labels, dates shifted, no session-folder names; the
        mapping goes to ``sourcedata/avlab/deidentification.json``.
    templates : Path | None
        A lab's templates folder (README, CHANGES, lab.json, ...).
    line_freq_hz : float | None
        Power-line frequency; overrides ``lab.json``.
    screen_size_m : tuple of float | None
        Physical screen width and height (m); overrides ``lab.json``.
    screen_distance_m : float | None
        Eye-to-screen distance (m); overrides ``lab.json``.
    stimuli_dir : Path | None
        Where the stimuli are when the path recorded in the session is gone.
    """

    model_config = ConfigDict(extra="forbid")

    bids_root: Path
    task: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9]+$")
    format: Literal["BrainVision", "EDF"] = "BrainVision"
    overwrite: bool = False
    deidentify: bool = False
    templates: Path | None = None
    line_freq_hz: float | None = None
    screen_size_m: tuple[float, float] | None = None
    screen_distance_m: float | None = None
    stimuli_dir: Path | None = None


class RunResult(BaseModel):
    """What happened to one session folder."""

    folder: Path
    subject: str
    session: str
    task: str
    run: str
    status: Literal["written", "unchanged", "overwritten"]
    n_files: int
    duration_s: float
    wall_s: float


class ConvertResult(BaseModel):
    """Result of :func:`convert_sessions`."""

    root: Path
    runs: list[RunResult]


# -- planning -------------------------------------------------------------------------
def _label(text: str, what: str, folder: Path) -> str:
    label = re.sub(r"[^a-zA-Z0-9]", "", text.removeprefix("sub-").removeprefix("ses-"))
    if not label:
        raise SessionError(
            f"{folder}: the {what} label {text!r} has no letters or digits.",
            hint=f"Record with a {what} label such as 01 (BIDS labels are [a-zA-Z0-9]+).",
        )
    return label


class _Source(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    folder: Path
    subject: str
    session: str
    task: str
    protocol: str
    created: str
    uid: str
    fingerprint: str
    required: list[str]


def _fingerprint(folder: Path, session: Session, options: ConvertOptions, lab: LabInfo) -> str:
    h = hashlib.sha256()
    for name in ("plan.json", "stimuli.json", "stimulus_log.jsonl", "trials.jsonl"):
        p = folder / name
        h.update(name.encode() + (p.read_bytes() if p.is_file() else b"-"))
    h.update(json.dumps(session.attrs, sort_keys=True, default=str).encode())
    for info in session.streams:
        h.update(f"{info.key}:{info.n_samples}:{info.channel_count}".encode())
    for media in sorted([*folder.glob("mic-*.flac"), *folder.glob("camera-*.mp4")]):
        h.update(f"{media.name}:{media.stat().st_size}".encode())
    opts = options.model_dump(mode="json", exclude={"overwrite", "bids_root", "stimuli_dir"})
    h.update(json.dumps(opts, sort_keys=True).encode())
    h.update(lab.model_dump_json().encode())
    h.update(f"avlab {__version__}".encode())
    return h.hexdigest()


def _source(folder: Path, options: ConvertOptions, lab: LabInfo) -> _Source:
    with Session.open(folder) as session:
        eeg = eeg_stream(session)
        plan = load_plan(session.folder)
        attrs = session.attrs
        subject = _label(plan.participant if plan else str(attrs.get("participant", "")),
                         "participant", folder)  # fmt: skip
        ses = _label(plan.session if plan else str(attrs.get("session", "")) or "01",
                     "session", folder)  # fmt: skip
        protocol = plan.protocol if plan else ""
        task = options.task or (re.sub(r"[^a-zA-Z0-9]", "", protocol) or "recording")
        required = sorted({_REQUIRED[s] for s in (plan.streams if plan else []) if s in _REQUIRED})
        return _Source(
            folder=session.folder, subject=subject, session=ses, task=task, protocol=protocol,
            created=str(attrs.get("created", "")), uid=str(_uid(session, eeg.key)),
            fingerprint=_fingerprint(session.folder, session, options, lab), required=required,
        )  # fmt: skip


def _uid(session: Session, key: str) -> str:
    import h5py

    with h5py.File(session.path, "r", swmr=session.swmr) as f:
        return str(f["streams"][key].attrs.get("uid", key))


# -- de-identification -----------------------------------------------------------------
class _Deid(BaseModel):
    subjects: dict[str, str] = Field(default_factory=dict)  # real label -> pseudonym
    daysback: dict[str, int] = Field(default_factory=dict)  # pseudonym -> days

    @staticmethod
    def path(root: Path) -> Path:
        return root / "sourcedata" / "avlab" / "deidentification.json"

    @classmethod
    def load(cls, root: Path) -> _Deid:
        p = cls.path(root)
        return cls.model_validate_json(p.read_text()) if p.is_file() else cls()

    def pseudonym(self, subject: str) -> str:
        if subject not in self.subjects:
            self.subjects[subject] = f"{len(self.subjects) + 1:02d}"
        return self.subjects[subject]

    def days(self, pseudonym: str, acq: datetime) -> int:
        if pseudonym not in self.daysback:
            # before 1925 (mne-bids' rule for anonymized dates) + a random number of weeks
            base = (acq.date() - date(1924, 12, 31)).days
            self.daysback[pseudonym] = base + 7 * (1 + secrets.randbelow(520))
        return self.daysback[pseudonym]


# -- the run ---------------------------------------------------------------------------


def _files_intact(root: Path, entry: RunManifest) -> list[str]:
    """Paths of the run's files that are missing or changed since they were written."""
    bad = []
    for rel, digest in entry.files.items():
        p = root / rel
        if not p.is_file() or sha256_file(p) != digest:
            bad.append(rel)
    return bad


def _remove_run_files(root: Path, run: BidsRun, entry: RunManifest | None) -> None:
    paths = [root / rel for rel in entry.files] if entry else []
    ses_dir = run.session_dir(root)
    for sub in ("eeg", "beh"):
        paths += list((ses_dir / sub).glob(f"{run.stem()}_*"))
    for p in paths:
        p.unlink(missing_ok=True)


def _screen_presentation(
    folder: Path, lab: LabInfo
) -> tuple[StimulusPresentation, tuple[int, int] | None]:
    size_px, refresh = None, None
    log = folder / "presenter.jsonl"
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "open":
                w, h = entry.get("window", (0, 0))
                size_px = (int(w), int(h)) if w and h else None
                refresh = float(entry.get("refresh_hz") or 0) or None
                break
    pres = StimulusPresentation(
        resolution_px=size_px, refresh_hz=refresh, size_m=lab.screen_size_m,
        distance_m=lab.screen_distance_m, head_stabilization=lab.head_stabilization,
    )  # fmt: skip
    return pres, size_px


#: Streams above this rate (audio) are left out of the manifest's sync table.
_MAX_SYNC_RATE_HZ = 5000.0


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _sync_rows(session: Session) -> list[StreamSync]:
    rows = []
    for info in session.streams:
        if info.n_samples < 2 or info.nominal_srate > _MAX_SYNC_RATE_HZ:
            continue  # audio: aligning 48 kHz of time stamps costs GBs; `avlab inspect` has it
        q = session.aligned_times(info).quality
        rows.append(
            StreamSync(
                stream=info.name,
                clock_method=q.clock_method,
                offset_residual_rms_ms=_finite(q.offset_residual_rms_ms),
                dejitter_residual_max_ms=_finite(q.dejitter_residual_max_ms),
            )  # fmt: skip
        )
    return rows


def _write_run(
    src: _Source, run: BidsRun, root: Path, options: ConvertOptions, lab: LabInfo,
    daysback: int | None,
) -> RunManifest:  # fmt: skip
    from avlab.bids.eeg import write_eeg
    from avlab.bids.media import write_media
    from avlab.bids.physio import ScreenGeometry, write_eyetracking

    with Session.open(src.folder) as session:
        timeline = Timeline.from_session(session)
        plan = load_plan(session.folder)
        eeg_dir = run.session_dir(root) / "eeg"
        pres, size_px = _screen_presentation(session.folder, lab)
        rows = build_events(session, timeline, plan, src.protocol)
        ev_tsv, ev_json = write_events(
            rows, eeg_dir / f"{run.stem()}_events.tsv", fs=timeline.fs, task_name=run.task,
            presentation=pres,
        )  # fmt: skip
        sync = _sync_rows(session)
    screen = (
        ScreenGeometry(size_px=size_px, size_m=lab.screen_size_m, distance_m=lab.screen_distance_m)
        if size_px
        else None
    )
    instructions = next((t.instructions for t in plan.trials if t.instructions), "") if plan else ""

    # EEG, eye tracking and media are independent files: written in parallel threads, each
    # with its own handle on session.h5 (FLAC encoding, HDF5 reads, gzip and file copies
    # release the GIL, so two cores are used).
    def eeg() -> Any:
        with Session.open(src.folder) as s:
            return write_eeg(
                s, timeline, run, root, lab=lab, fmt=options.format, daysback=daysback,
                task_description=_task_description(src.protocol), instructions=instructions,
            )  # fmt: skip

    def physio() -> list[Path]:
        with Session.open(src.folder) as s:
            return write_eyetracking(s, timeline, run, eeg_dir, lab=lab, screen=screen)

    def media() -> Any:
        with Session.open(src.folder) as s:
            return write_media(s, timeline, run, run.session_dir(root) / "beh", daysback=daysback)

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="avlab-bids") as pool:
        jobs = [pool.submit(f) for f in (media, eeg, physio)]
        wait(jobs, return_when=FIRST_EXCEPTION)
        for job in jobs:
            if job.exception() is not None:
                raise job.exception()  # type: ignore[misc]
        media_out, eeg_out, physio = (job.result() for job in jobs)
    media, missing = media_out
    _add_media_scans(root, run, media)
    present = ["eeg", "events"] if rows else ["eeg"]
    names = [p.name for p in physio]
    if any("recording-eye" in n and "screen" not in n and n.endswith("_physio.tsv.gz")
           for n in names):  # fmt: skip
        present.append("eyetrack")
    if any("screen_physio.tsv.gz" in n for n in names):
        present.append("eyetrack-screen")
    present += sorted({m.kind for m in media})
    files = [*eeg_out.files, ev_tsv, ev_json, *physio, *(m.path for m in media)]
    files += [extra for m in media for extra in m.extra_files]
    paths = [p for p in sorted(set(files)) if p.is_file()]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="avlab-sha") as pool:
        digests = list(pool.map(sha256_file, paths))
    hashes = {str(p.relative_to(root)): d for p, d in zip(paths, digests, strict=True)}
    return RunManifest(
        subject=run.subject, session=run.session, task=run.task, run=run.run,
        protocol=src.protocol, source="" if options.deidentify else src.folder.name,
        source_uid=src.uid, complete=True, fingerprint=src.fingerprint, required=src.required,
        present=present, missing_reasons=missing, duration_s=eeg_out.duration_s, sync=sync,
        files=hashes,
    )  # fmt: skip


def _task_description(protocol: str) -> str:
    return {
        "competing-talkers": "Two talkers speak at once, left and right; a cue says which "
        "one to attend; a comprehension question follows each trial.",
        "attention-switch": "Two competing talkers; the cue changes the attended talker "
        "in the middle of the trial.",
        "av-speech-in-noise": "One talker in noise, with and without lip video, at several "
        "signal-to-noise ratios; the participant reports the words.",
        "conversation": "Free conversation with a partner; microphones, camera and turn "
        "markers are recorded.",
    }.get(protocol, "")


def _add_media_scans(root: Path, run: BidsRun, media: list) -> None:
    if not media:
        return
    scans = run.session_dir(root) / f"sub-{run.subject}_ses-{run.session}_scans.tsv"
    cols, rows = read_tsv(scans) if scans.is_file() else (["filename", "acq_time"], [])
    idx = {r[0]: i for i, r in enumerate(rows)}
    for m in media:
        name = f"beh/{m.path.name}"
        acq = m.acq_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        row = [name, acq] + ["n/a"] * (len(cols) - 2)
        if name in idx:
            rows[idx[name]] = row
        else:
            rows.append(row)
    write_tsv(scans, cols, rows)


# -- dataset-level files -----------------------------------------------------------------
def _dataset_files(root: Path, templates: Templates, lab: LabInfo, tasks: list[str],
                   deidentify: bool) -> None:  # fmt: skip
    import mne_bids

    dd_path = root / "dataset_description.json"
    dd = templates.json("dataset_description.json")
    if dd_path.is_file():
        try:
            old = json.loads(dd_path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        if old.get("GeneratedBy", [{}])[0].get("Name") == "avlab":
            dd.update(old)  # the user's edits of an avlab dataset are kept
        elif old:
            dd.update({k: v for k, v in old.items() if k not in ("BIDSVersion",)})
    dd.update({
        "BIDSVersion": BIDS_VERSION,
        "HEDVersion": HED_VERSION,
        "GeneratedBy": [
            {"Name": "avlab", "Version": __version__,
             "Description": "avlab bids convert: session folders to BIDS"},
            {"Name": "MNE-BIDS", "Version": mne_bids.__version__},
        ],
    })  # fmt: skip
    dd.setdefault("License", lab.license)
    dd.setdefault("Authors", list(lab.authors))
    dd.setdefault("DatasetType", "raw")
    ordered = {"Name": dd.pop("Name", "avlab dataset"), "BIDSVersion": dd.pop("BIDSVersion")}
    ordered.update(dd)
    write_json(dd_path, ordered)
    today = "n/a" if deidentify else datetime.now(UTC).date().isoformat()
    values = {"name": ordered["Name"], "tasks": ", ".join(tasks) or "n/a",
              "avlab_version": __version__, "date": today}  # fmt: skip
    for name in ("README", "CHANGES"):
        if not (root / name).is_file():
            (root / name).write_text(templates.render(name, **values), encoding="utf-8")


def _participants(root: Path, templates: Templates, groups: dict[str, int]) -> None:
    tsv = root / "participants.tsv"
    cols, rows = read_tsv(tsv) if tsv.is_file() else (["participant_id"], [])
    if "group" not in cols:
        cols.append("group")
        rows = [r + ["n/a"] for r in rows]
    index = {r[0]: r for r in rows}
    for sub, group in groups.items():
        pid = f"sub-{sub}"
        if pid not in index:
            row = [pid] + ["n/a"] * (len(cols) - 1)
            rows.append(row)
            index[pid] = row
        row = index[pid]
        gi = cols.index("group")
        if row[gi] in ("n/a", ""):
            row[gi] = str(group)
    rows.sort(key=lambda r: r[0])
    write_tsv(tsv, cols, rows)
    meta_path = root / "participants.json"
    meta = templates.json("participants.json")
    if meta_path.is_file():
        try:
            meta.update(json.loads(meta_path.read_text(encoding="utf-8")))
        except ValueError:
            pass
    write_json(meta_path, {c: meta.get(c, {"Description": c}) for c in cols})


def _copy_stimuli(root: Path, src: _Source, options: ConvertOptions) -> None:
    """Copy the protocol's stimuli once into ``stimuli/<protocol>/`` (checksums checked)."""
    if not src.protocol:
        return
    manifest_file = src.folder / "stimuli.json"
    if not manifest_file.is_file():
        logger.warning("%s has no stimuli.json; stimuli not copied", src.folder)
        return
    doc = json.loads(manifest_file.read_text(encoding="utf-8"))
    candidates = [options.stimuli_dir] if options.stimuli_dir else []
    run_json = src.folder / "run.json"
    if run_json.is_file():
        recorded = json.loads(run_json.read_text()).get("stimuli_dir")
        if recorded:
            candidates.append(Path(recorded))
    wanted: list[tuple[str, str]] = []
    for entry in [*doc.get("stimuli", []), *doc.get("noise", [])]:
        for key, digest in (("wav", "sha256"), ("video", "video_sha256"),
                            ("mouth", "mouth_sha256")):  # fmt: skip
            if entry.get(key):
                wanted.append((str(entry[key]), str(entry.get(digest, ""))))
    dest_dir = root / "stimuli" / src.protocol
    base = next((c for c in candidates if c and all((c / w).is_file() for w, _ in wanted)), None)
    if base is None:
        missing_all = all((dest_dir / w).is_file() for w, _ in wanted)
        if missing_all:
            return
        raise SessionError(
            f"the stimuli of {src.folder} are not where the session says "
            f"({', '.join(str(c) for c in candidates if c) or 'no path recorded'}).",
            hint="Give the stimuli folder with --stimuli DIR (it holds stimuli.json).",
        )
    for rel, digest in wanted:
        dest = dest_dir / rel
        if dest.is_file() and (not digest or sha256_file(dest) == digest):
            continue
        if dest.is_file() and not options.overwrite:
            raise BidsConflictError(
                f"{dest} differs from the stimulus {base / rel} this session played.",
                hint="Two sessions used different stimuli under one protocol name; convert "
                "them into separate datasets, or pass --overwrite to replace the file.",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base / rel, dest)
        if digest and sha256_file(dest) != digest:
            raise SessionError(
                f"stimulus {base / rel} does not match its checksum in {manifest_file}.",
                hint="Rebuild the stimuli (`avlab stimuli build`) or give the original folder.",
            )
    if options.deidentify:
        doc.pop("created", None)
    write_json(dest_dir / "stimuli.json", doc)


# -- entry point -----------------------------------------------------------------------
@contextmanager
def _writable(root: Path) -> Iterator[None]:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".avlab-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"cannot write the BIDS root {root}: {exc.strerror or exc}.",
            hint="Choose a folder you can write to, on a disk with space.",
        ) from exc
    yield


def convert_sessions(
    folders: list[Path], options: ConvertOptions, *, progress: bool = True
) -> ConvertResult:
    """Convert session folders into (or add them to) a BIDS dataset.

    Parameters
    ----------
    folders : list of Path
        Session folders written by ``avlab run`` or ``avlab record``.
    options : ConvertOptions
        Output root and options.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    result : ConvertResult
        One entry per session folder, in the order given.

    Raises
    ------
    SessionError
        A folder is not a readable session or has no EEG.
    BidsConflictError
        A run exists with different content and ``overwrite`` is off (nothing written).
    OutputError
        The root cannot be written.
    BidsValidationError
        A written events sidecar fails HED validation.
    """
    root = options.bids_root
    templates = load_templates(options.templates)
    lab = templates.lab()
    updates = {k: v for k, v in {
        "line_freq_hz": options.line_freq_hz, "screen_size_m": options.screen_size_m,
        "screen_distance_m": options.screen_distance_m}.items() if v is not None}  # fmt: skip
    lab = lab.model_copy(update=updates)
    sources = [_source(Path(f), options, lab) for f in folders]
    # hedtools takes seconds to import and load its schema: done beside the conversion
    hed_ready = threading.Thread(target=_load_hed, name="avlab-hed-load", daemon=True)
    hed_ready.start()
    with _writable(root):
        manifest = DatasetManifest.load(root)
        if manifest.runs and manifest.deidentified != options.deidentify:
            raise BidsConflictError(
                f"{root} was converted {'with' if manifest.deidentified else 'without'} "
                "--deidentify; one dataset cannot mix both.",
                hint="Use the same --deidentify choice, or a new --bids-root.",
            )
        deid = _Deid.load(root) if options.deidentify else None
        plans = _plan_runs(sources, manifest, deid)
        todo = _decide(root, plans, manifest, options)
        results = _run_all(root, todo, manifest, options, lab, deid, progress)
        groups = _groups(plans)
        _participants(root, templates, groups)
        tasks = sorted({run.task for _, run in plans})
        _dataset_files(root, templates, lab, tasks, options.deidentify)
        from avlab.bids.media import update_bidsignore

        update_bidsignore(root)
        for src in {s.protocol: s for s in sources}.values():
            _copy_stimuli(root, src, options)
        manifest.avlab_version = __version__
        manifest.deidentified = options.deidentify
        write_json(DatasetManifest.path(root), json.loads(manifest.model_dump_json()))
        if deid is not None:
            write_json(_Deid.path(root), json.loads(deid.model_dump_json()))
    hed_ready.join()
    _check_hed(root, [r for r in results if r.status != "unchanged"], plans)
    return ConvertResult(root=root, runs=results)


def _plan_runs(
    sources: list[_Source], manifest: DatasetManifest, deid: _Deid | None
) -> list[tuple[_Source, BidsRun]]:
    """Assign run numbers: a recording keeps its number; new ones follow, oldest first."""
    plans: list[tuple[_Source, BidsRun]] = []
    taken: dict[tuple[str, str, str], set[str]] = {}
    for e in manifest.runs:
        taken.setdefault((e.subject, e.session, e.task), set()).add(e.run)
    for src in sorted(sources, key=lambda s: s.created):
        sub = deid.pseudonym(src.subject) if deid else src.subject
        key = (sub, src.session, src.task)
        known = next((e.run for e in manifest.runs
                      if (e.subject, e.session, e.task) == key and e.source_uid == src.uid),
                     None)  # fmt: skip
        if known is None:
            used = taken.setdefault(key, set())
            known = f"{max([int(r) for r in used] + [0]) + 1:02d}"
            used.add(known)
        run = BidsRun(folder=src.folder, subject=sub, session=src.session, task=src.task,
                      run=known, protocol=src.protocol)  # fmt: skip
        plans.append((src, run))
    order = {id(s): i for i, s in enumerate(sources)}
    return sorted(plans, key=lambda p: order[id(p[0])])


def _entry(manifest: DatasetManifest, run: BidsRun) -> RunManifest | None:
    key = (run.subject, run.session, run.task, run.run)
    return next((e for e in manifest.runs if e.key() == key), None)


def _decide(
    root: Path, plans: list[tuple[_Source, BidsRun]], manifest: DatasetManifest,
    options: ConvertOptions,
) -> list[tuple[_Source, BidsRun, str]]:  # fmt: skip
    """Return (source, run, status) for every run; raise before writing on a conflict."""
    todo, conflicts = [], []
    for src, run in plans:
        entry = _entry(manifest, run)
        on_disk = any(
            any((run.session_dir(root) / d).glob(f"{run.stem()}_*")) for d in ("eeg", "beh")
        )
        if entry is not None and entry.complete and entry.fingerprint == src.fingerprint:
            changed = _files_intact(root, entry)
            if not changed:
                todo.append((src, run, "unchanged"))
                continue
            reason = "files changed since they were written: " + ", ".join(changed[:5])
        elif entry is not None and not entry.complete:
            todo.append((src, run, "written"))  # partial from a crash: redone without asking
            continue
        elif entry is not None:
            reason = "the session or the conversion options differ from the earlier conversion"
        elif on_disk:
            reason = "files of this run exist that avlab did not write"
        else:
            todo.append((src, run, "written"))
            continue
        if options.overwrite:
            todo.append((src, run, "overwritten"))
        else:
            conflicts.append(f"{run.stem()} ({reason})")
    if conflicts:
        raise BidsConflictError(
            f"{root} already holds different data for " + "; ".join(conflicts) + ".",
            hint="Nothing was written. Pass --overwrite to replace these runs, or convert "
            "into a new --bids-root.",
        )
    return todo


def _run_all(
    root: Path, todo: list[tuple[_Source, BidsRun, str]], manifest: DatasetManifest,
    options: ConvertOptions, lab: LabInfo, deid: _Deid | None, progress: bool,
) -> list[RunResult]:  # fmt: skip
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    results = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                   "{task.total}"), TimeElapsedColumn(), disable=not progress)  # fmt: skip
    with bar:
        task = bar.add_task("converting", total=len(todo))
        for src, run, status in todo:
            bar.update(task, description=f"{run.stem()}")
            t0 = time.monotonic()
            entry = _entry(manifest, run)
            if status == "unchanged":
                assert entry is not None
                results.append(RunResult(folder=src.folder, subject=run.subject,
                    session=run.session, task=run.task, run=run.run, status=status,
                    n_files=len(entry.files), duration_s=entry.duration_s, wall_s=0.0))  # fmt: skip
                bar.advance(task)
                continue
            _remove_run_files(root, run, entry)
            if entry is not None:
                manifest.runs.remove(entry)
            pending = RunManifest(subject=run.subject, session=run.session, task=run.task,
                                  run=run.run, source_uid=src.uid, complete=False)  # fmt: skip
            manifest.runs.append(pending)
            write_json(DatasetManifest.path(root), json.loads(manifest.model_dump_json()))
            daysback = None
            if deid is not None:
                with Session.open(src.folder) as s:
                    acq = Timeline.from_session(s).acq_time
                daysback = deid.days(run.subject, acq)
            done = _write_run(src, run, root, options, lab, daysback)
            manifest.runs[manifest.runs.index(pending)] = done
            manifest.runs.sort(key=lambda e: e.key())
            write_json(DatasetManifest.path(root), json.loads(manifest.model_dump_json()))
            results.append(RunResult(folder=src.folder, subject=run.subject, session=run.session,
                task=run.task, run=run.run, status=status, n_files=len(done.files),
                duration_s=done.duration_s, wall_s=time.monotonic() - t0))  # fmt: skip
            logger.info("%s: %s (%d files)", run.stem(), status, len(done.files))
            bar.advance(task)
    return results


def _groups(plans: list[tuple[_Source, BidsRun]]) -> dict[str, int]:
    """Counterbalancing group of each subject, from the session plans."""
    groups = {}
    for src, run in plans:
        plan = load_plan(src.folder)
        if plan is not None:
            groups[run.subject] = plan.counterbalance
    return groups


def _load_hed() -> None:
    from avlab.bids.hed import _schema

    try:
        _schema(HED_VERSION)
    except Exception:  # noqa: BLE001 - reported by validate_hed in the main thread
        logger.debug("HED schema preload failed", exc_info=True)


def _check_hed(root: Path, results: list[RunResult], plans: list[tuple[_Source, BidsRun]]) -> None:
    from avlab.bids.hed import validate_hed

    stems = {(r.subject, r.session, r.task, r.run) for r in results}
    errors = []
    for _, run in plans:
        if (run.subject, run.session, run.task, run.run) not in stems:
            continue
        tsv = run.session_dir(root) / "eeg" / f"{run.stem()}_events.tsv"
        issues = validate_hed(tsv.with_suffix(".json"), tsv, root=root)
        errors += [i for i in issues if i.severity == "error"]
    if errors:
        first = errors[0]
        raise BidsValidationError(
            f"{first.file}: HED: {first.code}: {first.message} ({len(errors)} HED errors).",
            hint="This is a bug in avlab's HED map (avlab/bids/events.py); please report it. "
            "The data were written.",
        )
