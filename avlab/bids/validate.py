"""Validate a BIDS dataset: the official validator plus avlab's cross-modal checks.

The official validator is the bids-validator-deno bundle (BIDS 1.11.1), run by deno
directly, with read and environment permissions only (no network: the package's own
``bids-validator-deno`` command adds ``--allow-net``). avlab's checks
(:func:`cross_checks`, codes ``AVLAB_*``) cover what the validator cannot see: the
modalities a protocol demands, eye-tracking and EEG on one time line, events inside
the recording, stimulus files, physio time stamps, clock-sync quality and files changed
since conversion. HED is checked by hedtools (:mod:`avlab.bids.hed`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field, computed_field

from avlab._logging import logger
from avlab.bids._io import read_tsv, sha256_file
from avlab.bids.models import DatasetManifest, Issue, RunManifest
from avlab.bids.official import (
    parse_validator_output,
    run_bids_validator,
    validator_command,
    validator_env,
)
from avlab.bids.report import RunFiles, eeg_duration, find_runs

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.table import Table

__all__ = [
    "DEJITTER_RESIDUAL_MAX_MS",
    "DURATION_TOLERANCE_REL",
    "DURATION_TOLERANCE_S",
    "OFFSET_RESIDUAL_RMS_MS",
    "ValidationReport",
    "cross_checks",
    "parse_validator_output",
    "print_report",
    "run_bids_validator",
    "validate_dataset",
    "validator_command",
    "validator_env",
]

#: Clock-offset fit residual (RMS, ms) above which a stream's sync is doubtful: the LSL
#: offset estimates of a stream scatter this much around the fitted clock line.
OFFSET_RESIDUAL_RMS_MS = 1.0
#: Largest dejitter residual (ms) tolerated: a sample's time stamp moved this far from
#: the regular grid fitted through the stream's stamps.
DEJITTER_RESIDUAL_MAX_MS = 5.0
#: Eye tracking and EEG must end within max(this, rel × EEG length) of each other (s).
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_REL = 0.01


_RECONVERT = "Re-run `avlab bids convert ... --overwrite` for this run."
_RECONVERT_LC = "re-run `avlab bids convert ... --overwrite` for this run."


# -- avlab's cross-modal checks ------------------------------------------------------------
class _Issues(list[Issue]):
    """Issues of avlab's checks; ``add`` builds one with ``source="avlab"``."""

    def add(self, code: str, file: str, message: str, severity: str = "error") -> None:
        self.append(Issue(code=code, severity=severity, file=file, message=message,  # type: ignore[arg-type]
                          source="avlab"))  # fmt: skip


def _rel(p: Path, root: Path) -> str:
    return str(p.relative_to(root))


def _check_modalities(run: RunFiles, entry: RunManifest, root: Path) -> list[Issue]:
    have = set(run.modalities())
    out = _Issues()
    extra = [m for m in entry.missing_reasons if m not in entry.required]
    for m in [*entry.required, *extra]:
        if m in have:
            continue
        file = _rel(run.eeg or run.folder, root)
        reason = entry.missing_reasons.get(m)
        if reason:
            msg = f"run {run.stem} has no {m}: {reason}. Nothing to fix if that is expected."
            out.add("AVLAB_MISSING_MODALITY", file, msg, "warning")
        else:
            msg = (f"run {run.stem} has no {m}, which its protocol records (manifest "
                   f"'required'). Restore the file or {_RECONVERT_LC}")  # fmt: skip
            out.add("AVLAB_MISSING_MODALITY", file, msg)
    return out


@dataclass(frozen=True)
class _TimeScan:
    """First/last time stamp of a physio file and where it stops increasing."""

    n: int = 0
    first: float = float("nan")
    last: float = float("nan")
    n_not_increasing: int = 0
    first_bad_row: int = 0  # 1-based row of the first stamp not above its predecessor
    error: str = ""


def _scan_timestamps(path: Path, block_bytes: int = 1 << 20) -> _TimeScan:
    """Stream the first column of a headerless ``.tsv.gz`` (~1 MB of text at a time)."""
    n = n_bad = first_bad = 0
    first = prev = float("nan")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            while lines := f.readlines(block_bytes):
                cells = [ln.split("\t", 1)[0].strip() for ln in lines]
                try:
                    t = np.array(cells, dtype=float)
                except ValueError:
                    j = next(j for j, c in enumerate(cells) if not _is_float(c))
                    return _TimeScan(error=f"row {n + j + 1} has timestamp {cells[j]!r}")
                if n == 0:
                    first = float(t[0])
                # a step is bad unless strictly positive (NaN included); the first row has none
                bad = ~(np.diff(t, prepend=prev) > 0)
                if n == 0:
                    bad[0] = False
                if bad.any():
                    first_bad = first_bad or n + int(np.argmax(bad)) + 1
                    n_bad += int(bad.sum())
                n += len(t)
                prev = float(t[-1])
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        return _TimeScan(error=f"cannot be read ({exc})")
    return _TimeScan(n=n, first=first, last=prev, n_not_increasing=n_bad, first_bad_row=first_bad)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_physio(run: RunFiles, root: Path, eeg_dur: float | None) -> list[Issue]:
    out = _Issues()
    for p in run.physio.values():
        file, name = _rel(p, root), p.name
        scan = _scan_timestamps(p)
        if scan.error or scan.n == 0:
            out.add("AVLAB_PHYSIO_UNREADABLE", file, f"{name}: {scan.error or 'no rows'}. "
                    f"{_RECONVERT}")  # fmt: skip
            continue
        if scan.n_not_increasing:
            out.add("AVLAB_PHYSIO_TIME_NOT_MONOTONIC", file, f"{name}: the timestamp column "
                    f"does not increase at {scan.n_not_increasing} of {scan.n} rows (first at "
                    f"row {scan.first_bad_row}); samples must be in time order without "
                    f"repeats. {_RECONVERT}")  # fmt: skip
        start = _load_json(p.with_name(name.removesuffix(".tsv.gz") + ".json")).get("StartTime")
        if not isinstance(start, int | float) or abs(start - scan.first) > 1.5e-6:
            out.add("AVLAB_PHYSIO_START_TIME", file, f"{name}: StartTime in its JSON is "
                    f"{start!r}, the first timestamp is {scan.first:.6f} s; they must be equal. "
                    f"Set StartTime to the first timestamp or {_RECONVERT_LC}")  # fmt: skip
        if eeg_dur is None:
            continue
        tol = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_REL * eeg_dur)
        if abs(scan.last - eeg_dur) > tol:
            out.add("AVLAB_DURATION_MISMATCH", file, f"{name}: eye tracking ends at "
                    f"{scan.last:.3f} s, the EEG at {eeg_dur:.3f} s (difference "
                    f"{scan.last - eeg_dur:+.3f} s, tolerance {tol:.2f} s). If the eye tracker "
                    f"really stopped early, note it in the README; if the file was cut, "
                    f"{_RECONVERT_LC}", "warning")  # fmt: skip
    return out


def _check_events(
    run: RunFiles, root: Path, eeg_dur: float | None, sfreq: float | None
) -> list[Issue]:
    out = _Issues()
    if run.events_tsv is None:
        return out
    file = _rel(run.events_tsv, root)
    try:
        cols, rows = read_tsv(run.events_tsv)
    except (OSError, UnicodeDecodeError) as exc:
        out.add("AVLAB_EVENTS_UNREADABLE", file, f"cannot read {file}: {exc}. {_RECONVERT}")
        return out
    col = {c: i for i, c in enumerate(cols)}

    def get(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i] if i is not None and i < len(row) else "n/a"

    if eeg_dur is not None and "onset" in col:
        tol = 1.0 / sfreq if sfreq else 1e-3  # one sample
        outside = []
        for k, row in enumerate(rows, start=2):  # line 1 is the header
            kind, onset = get(row, "trial_type"), get(row, "onset")
            if kind != "BAD_ACQ_SKIP" and _is_float(onset):
                if not -tol <= float(onset) <= eeg_dur + tol:
                    outside.append(f"line {k} ({kind} at {float(onset):.3f} s)")
        if outside:
            more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            out.add("AVLAB_EVENT_OUTSIDE_RECORDING", file, f"{len(outside)} events lie outside "
                    f"the EEG recording [0, {eeg_dur:.3f}] s: {', '.join(outside[:5])}{more}. "
                    "Onsets are seconds from the first EEG sample; fix the onsets or "
                    f"{_RECONVERT_LC}")  # fmt: skip
    if "stim_file" in col:
        stim_root = (root / "stimuli").resolve()
        lines: dict[str, list[int]] = {}
        for k, row in enumerate(rows, start=2):
            if (value := get(row, "stim_file")) != "n/a":
                lines.setdefault(value, []).append(k)
        for value, ks in lines.items():
            target = (stim_root / value).resolve()
            if not target.is_relative_to(stim_root) or not target.is_file():
                out.add("AVLAB_STIM_FILE_MISSING", file, f"stim_file {value!r} (line {ks[0]}, "
                        f"{len(ks)} rows) is not in stimuli/: expected stimuli/{value}. Copy "
                        "the stimulus there (stim_file is relative to stimuli/) or re-run "
                        "`avlab bids convert` with --stimuli DIR.")  # fmt: skip
    return out


def _check_hed(run: RunFiles, root: Path, top: list[Path]) -> list[Issue]:
    from avlab.bids.hed import validate_hed

    if run.events_tsv is None:
        return []
    parents = [p for p in top if _task_of(p.name) == run.task]
    if run.events_json is not None:
        return validate_hed(run.events_json, run.events_tsv, root=root, parents=parents)
    if parents:
        return validate_hed(parents[-1], run.events_tsv, root=root, parents=parents[:-1])
    return []


def _task_of(name: str) -> str:
    m = re.search(r"(?:^|_)task-([a-zA-Z0-9]+)", name)
    return m.group(1) if m else ""


def _check_sync(run: RunFiles, entry: RunManifest, root: Path) -> list[Issue]:
    out = _Issues()
    file = _rel(DatasetManifest.path(root), root)
    fix = ("Times of this stream may be off by that much: check the device's network (wired, "
           "no Wi-Fi power saving) and its clock sync before the next recording; allow for it "
           "when analysing this run.")  # fmt: skip
    for s in entry.sync:
        # None: not measured (irregular streams have no dejitter fit)
        rms, jitter = s.offset_residual_rms_ms, s.dejitter_residual_max_ms
        if rms is not None and rms > OFFSET_RESIDUAL_RMS_MS:
            out.add("AVLAB_SYNC_OFFSET_RESIDUAL", file, f"run {run.stem}, stream {s.stream}: "
                    f"clock-offset residual {rms:.2f} ms RMS > {OFFSET_RESIDUAL_RMS_MS} ms. "
                    f"{fix}", "warning")  # fmt: skip
        if jitter is not None and jitter > DEJITTER_RESIDUAL_MAX_MS:
            out.add("AVLAB_SYNC_DEJITTER_RESIDUAL", file, f"run {run.stem}, stream {s.stream}: "
                    f"time-stamp jitter up to {jitter:.2f} ms > {DEJITTER_RESIDUAL_MAX_MS} ms. "
                    f"{fix}", "warning")  # fmt: skip
    return out


#: Files that hold recorded data (never edited by hand): a changed hash is an error.
#: Sidecars and tables (``.json``, ``.tsv``) may be curated: a changed hash is a warning.
_DATA_SUFFIXES = (".eeg", ".vhdr", ".vmrk", ".edf", ".bdf", ".tsv.gz", ".flac", ".wav", ".mp4",
                  ".mkv", ".avi", ".mov")  # fmt: skip


def _check_manifest_files(entry: RunManifest, root: Path) -> list[Issue]:
    out = _Issues()
    stem = f"sub-{entry.subject}_ses-{entry.session}_task-{entry.task}_run-{entry.run}"
    man = _rel(DatasetManifest.path(root), root)
    if not entry.complete:
        out.add("AVLAB_RUN_INCOMPLETE", man, f"run {stem} is marked incomplete in {man}: its "
                "conversion did not finish. Re-run `avlab bids convert` on its session folder "
                "(partial files are replaced).")  # fmt: skip
        return out
    for rel, digest in entry.files.items():
        p = root / rel
        if not p.is_file():
            out.add("AVLAB_FILE_MISSING", rel, f"{rel} was written by avlab (listed in {man}) "
                    f"but is gone. {_RECONVERT}")  # fmt: skip
        elif sha256_file(p) != digest:
            data = p.name.endswith(_DATA_SUFFIXES)
            what = (f"recorded data must not change. {_RECONVERT}" if data else
                    "if the edit was deliberate, note it in CHANGES (this warning stays); "
                    f"otherwise {_RECONVERT_LC}")  # fmt: skip
            out.add("AVLAB_FILE_CHANGED", rel, f"{rel} differs from what avlab wrote (sha256 "
                    f"in {man}): {what}", "error" if data else "warning")  # fmt: skip
    return out


def cross_checks(root: Path) -> list[Issue]:
    """Run avlab's own checks across the modalities of every run.

    Checks, per EEG run found under ``root`` (codes ``AVLAB_*``): required modalities
    present (manifest ``required``; a ``missing_reasons`` entry makes it a warning, and
    any modality with a reason is reported as a warning);
    eye tracking ends within ``max(0.5 s, 1 %)`` of the EEG (warning); event onsets in
    ``[0, EEG duration]`` (``BAD_ACQ_SKIP`` rows excepted); every ``stim_file`` under
    ``stimuli/``; physio ``timestamp`` strictly increasing and ``StartTime`` equal to
    its first value; clock-sync residuals within :data:`OFFSET_RESIDUAL_RMS_MS` and
    :data:`DEJITTER_RESIDUAL_MAX_MS` (warnings); files unchanged since conversion
    (manifest sha256); HED of every events sidecar (hedtools).

    Parameters
    ----------
    root : Path
        Dataset root.

    Returns
    -------
    list of Issue
        Every message names the file and says how to fix it.
    """
    manifest = DatasetManifest.load(root)
    entries = {r.key(): r for r in manifest.runs}
    top = sorted(root.glob("*_events.json"))
    issues: list[Issue] = []
    for run in find_runs(root):
        entry = entries.get(run.key())
        eeg_dur, sfreq = eeg_duration(run)
        if eeg_dur is None and entry is not None:
            eeg_dur = entry.duration_s
        if entry is not None:
            issues += _check_modalities(run, entry, root)
            issues += _check_sync(run, entry, root)
        issues += _check_physio(run, root, eeg_dur)
        issues += _check_events(run, root, eeg_dur, sfreq)
        issues += _check_hed(run, root, top)
    if top:
        from avlab.bids.hed import validate_hed

        for p in top:
            issues += validate_hed(p, root=root)
    for entry in manifest.runs:
        issues += _check_manifest_files(entry, root)
    seen = set()
    unique = []
    for i in issues:
        if (i.code, i.file, i.message) not in seen:
            seen.add((i.code, i.file, i.message))
            unique.append(i)
    logger.info("avlab checks on %s: %d issues", root, len(unique))
    return unique


# -- report -------------------------------------------------------------------------------
class ValidationReport(BaseModel):
    """Issues of all sources and the official validator's summary.

    Attributes
    ----------
    issues : list of Issue
        Errors first, then warnings.
    summary : dict
        The official validator's summary (``subjects, sessions, tasks, modalities,
        totalFiles``, ...); avlab's own count of subjects, sessions, tasks and runs
        when the official validator was not run.
    """

    issues: list[Issue] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_errors(self) -> int:
        """Number of errors."""
        return sum(1 for i in self.issues if i.severity == "error")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_warnings(self) -> int:
        """Number of warnings."""
        return sum(1 for i in self.issues if i.severity == "warning")

    def to_json(self) -> str:
        """Return the report as indented JSON (issues, summary, n_errors, n_warnings)."""
        return self.model_dump_json(indent=2)


def validate_dataset(
    root: Path, *, official: bool = True, ignore_warnings: bool = False
) -> ValidationReport:
    """Validate a BIDS dataset: official validator (optional) + :func:`cross_checks`.

    Parameters
    ----------
    root : Path
        Dataset root.
    official : bool
        Run the official validator (deno) too.
    ignore_warnings : bool
        Keep errors only.

    Returns
    -------
    ValidationReport

    Raises
    ------
    ValidatorUnavailableError
        ``official`` and the validator cannot be run.
    """
    issues: list[Issue] = []
    summary: dict[str, Any] = {}
    if official:
        issues, summary = run_bids_validator(root, ignore_warnings=ignore_warnings)
    else:
        runs = find_runs(root)
        summary = {
            "subjects": sorted({r.subject for r in runs}),
            "sessions": sorted({r.session for r in runs if r.session}),
            "tasks": sorted({r.task for r in runs}),
            "runs": len(runs),
        }
    issues += cross_checks(root)
    if ignore_warnings:
        issues = [i for i in issues if i.severity == "error"]
    issues.sort(key=lambda i: i.severity != "error")  # stable: errors first
    return ValidationReport(issues=issues, summary=summary)


#: Above this many issues, :func:`print_report` groups them per code.
FULL_TABLE_MAX = 10


def _grouped(issues: list[Issue], title: str, sev: Callable[[str], str]) -> Table:
    """One row per (severity, source, code without sub-code): count, example, message."""
    from rich.markup import escape
    from rich.table import Table

    groups: dict[tuple[str, str, str], list[Issue]] = {}
    for i in issues:
        groups.setdefault((i.severity, i.source, i.code.split("/")[0]), []).append(i)
    table = Table(title=title, expand=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", overflow="fold", ratio=1)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("example file: message", overflow="fold", ratio=3)
    for (s, _, code), items in groups.items():
        msgs = [i.message for i in items]
        msg = msgs[0]
        if len(set(msgs)) > 1:  # keep the sentences all messages share
            common = os.path.commonprefix(msgs)
            cut = common.rfind(". ")
            msg = common[: cut + 1] if cut > 20 else msgs[0]
        subs = sorted({i.code.split("/", 1)[1] for i in items if "/" in i.code})
        if len(subs) > 1:
            more = f" and {len(subs) - 8} more" if len(subs) > 8 else ""
            msg += f" [{', '.join(subs[:8])}{more}]"
        where = f"[bold]{escape(items[0].file or '(dataset)')}[/]"
        table.add_row(sev(s), escape(code), str(len(items)), f"{where}: {escape(msg)}")
    return table


def print_report(report: ValidationReport, console: Console) -> None:
    """Print the issues as a rich table and a one-line verdict.

    Up to :data:`FULL_TABLE_MAX` issues are listed one per row; beyond that, errors are
    listed in full (grouped too when there are more than twice as many) and warnings
    grouped, one row per code (count, example file, the message they share).

    Parameters
    ----------
    report : ValidationReport
    console : rich.console.Console
    """
    from rich.markup import escape
    from rich.table import Table

    def sev(s: str) -> str:
        return "[red]error[/]" if s == "error" else "[yellow]warning[/]"

    def full(issues: list[Issue], title: str) -> Table:
        table = Table(title=title, show_lines=True, expand=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("code", overflow="fold", ratio=1)
        table.add_column("file: message", overflow="fold", ratio=3)
        for i in issues:
            where = f"[bold]{escape(i.file or '(dataset)')}[/]"
            table.add_row(sev(i.severity), escape(i.code), f"{where}: {escape(i.message)}")
        return table

    issues = report.issues
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity == "warning"]
    if len(issues) <= FULL_TABLE_MAX:
        if issues:
            console.print(full(issues, "Validation issues"))
    else:
        if len(errors) <= 2 * FULL_TABLE_MAX:
            if errors:
                console.print(full(errors, f"Errors ({len(errors)})"))
        else:
            console.print(_grouped(errors, f"Errors ({len(errors)}, grouped by code)", sev))
        if warnings:
            console.print(_grouped(warnings, f"Warnings ({len(warnings)}, grouped by code)", sev))
    by_source = Counter(i.source for i in issues)
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(by_source.items()))
    counts = f"{report.n_errors} errors, {report.n_warnings} warnings"
    if sources:
        counts += f" ({sources})"
    if report.n_errors:
        console.print(f"[bold red]INVALID[/]: {counts}.")
    else:
        console.print(f"[bold green]VALID[/]: {counts}.")
