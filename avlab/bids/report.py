"""What a BIDS dataset holds: subjects, sessions, runs, durations, missing modalities.

Works on any BIDS EEG dataset: runs are found from their ``*_eeg.*`` files, durations
come from ``eeg.json`` (``RecordingDuration``) or the EEG file's header and size, and
modalities from the files present beside the EEG (``recording-*_physio``,
``_physioevents``, ``events``) and in ``beh/`` (``_audio``, ``_video``). When avlab
converted the dataset, ``sourcedata/avlab/manifest.json`` adds what each run's protocol
demanded and why a modality is absent (e.g. the simulated camera has no video file).

:func:`find_runs` and :func:`eeg_duration` are shared with :mod:`avlab.bids.validate`.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from avlab._logging import logger
from avlab.bids._io import atomic_write_bytes, read_tsv
from avlab.bids.models import DatasetManifest, RunManifest

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "DatasetReport",
    "RunFiles",
    "RunRow",
    "dataset_report",
    "eeg_duration",
    "find_runs",
    "print_dataset_report",
    "write_html",
]

#: EEG data files BIDS allows (first found wins); ``.json`` marks a run too.
EEG_DATA_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set")
#: Modalities in the order tables show them (manifest vocabulary + ``physioevents``).
MODALITY_ORDER = (
    "eeg",
    "events",
    "eyetrack",
    "eyetrack-screen",
    "physioevents",
    "physio",
    "audio",
    "video",
)

_ENTITY = re.compile(r"([a-z]+)-([a-zA-Z0-9]+)")
_BV_BYTES = {"IEEE_FLOAT_32": 4, "INT_16": 2, "INT_32": 4, "UINT_16": 2}


@dataclass
class RunFiles:
    """The files of one EEG run found in a BIDS tree (absolute paths).

    Attributes
    ----------
    subject, session, task, run : str
        Entity labels (``session``/``run`` ``""`` when the dataset has none).
    stem : str
        File-name prefix shared by the run's files (``sub-01_ses-01_task-x_run-01``).
    folder : Path
        The ``eeg/`` folder.
    eeg : Path | None
        The EEG data file (``.vhdr``, ``.edf``, ...).
    eeg_json, events_tsv, events_json : Path | None
        Sidecars, when present.
    physio : dict of str to Path
        ``recording`` label → ``…_physio.tsv.gz``.
    physioevents : dict of str to Path
        ``recording`` label → ``…_physioevents.tsv.gz``.
    audio, video : list of Path
        Participant recordings in ``beh/`` (BEP047 draft names).
    """

    subject: str
    session: str
    task: str
    run: str
    stem: str
    folder: Path
    eeg: Path | None = None
    eeg_json: Path | None = None
    events_tsv: Path | None = None
    events_json: Path | None = None
    physio: dict[str, Path] = field(default_factory=dict)
    physioevents: dict[str, Path] = field(default_factory=dict)
    audio: list[Path] = field(default_factory=list)
    video: list[Path] = field(default_factory=list)

    def key(self) -> tuple[str, str, str, str]:
        """Return ``(subject, session, task, run)`` as the manifest keys runs."""
        return (self.subject, self.session, self.task, self.run)

    def modalities(self) -> list[str]:
        """Modalities present, in :data:`MODALITY_ORDER`."""
        have = set()
        if self.eeg is not None:
            have.add("eeg")
        if self.events_tsv is not None:
            have.add("events")
        for label in self.physio:
            have.add(_physio_modality(label, self.physio[label]))
        if self.physioevents:
            have.add("physioevents")
        if self.audio:
            have.add("audio")
        if self.video:
            have.add("video")
        return [m for m in MODALITY_ORDER if m in have]


def _physio_modality(label: str, path: Path) -> str:
    if "screen" in label:
        return "eyetrack-screen"
    if label.startswith("eye"):
        return "eyetrack"
    try:
        meta = json.loads(_physio_json(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "physio"
    return "eyetrack" if meta.get("PhysioType") == "eyetrack" else "physio"


def _physio_json(tsv_gz: Path) -> Path:
    return tsv_gz.with_name(tsv_gz.name.removesuffix(".tsv.gz") + ".json")


def _entities(stem: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _ENTITY.finditer(stem)}


def _recording(name: str) -> str:
    return _entities(name).get("recording", "")


def find_runs(root: Path) -> list[RunFiles]:
    """Find every EEG run under ``root`` (``sub-*/[ses-*/]eeg/*_eeg.*``), sorted.

    Parameters
    ----------
    root : Path
        BIDS dataset root.

    Returns
    -------
    list of RunFiles
    """
    stems: dict[tuple[Path, str], None] = {}
    for pattern in ("sub-*/eeg/*_eeg.*", "sub-*/ses-*/eeg/*_eeg.*"):
        for p in root.glob(pattern):
            if p.suffix in (*EEG_DATA_EXTENSIONS, ".json"):
                stems[(p.parent, p.name[: p.name.rindex("_eeg.")])] = None
    runs = []
    for folder, stem in sorted(stems, key=lambda k: (str(k[0]), k[1])):
        ent = _entities(stem)
        rf = RunFiles(
            subject=ent.get("sub", ""),
            session=ent.get("ses", ""),
            task=ent.get("task", ""),
            run=ent.get("run", ""),
            stem=stem,
            folder=folder,
        )
        rf.eeg = next(
            (
                folder / f"{stem}_eeg{e}"
                for e in EEG_DATA_EXTENSIONS
                if (folder / f"{stem}_eeg{e}").is_file()
            ),
            None,
        )
        rf.eeg_json = _if_file(folder / f"{stem}_eeg.json")
        rf.events_tsv = _if_file(folder / f"{stem}_events.tsv")
        rf.events_json = _if_file(folder / f"{stem}_events.json")
        for p in sorted(folder.glob(f"{stem}_recording-*_physio.tsv.gz")):
            rf.physio[_recording(p.name)] = p
        for p in sorted(folder.glob(f"{stem}_recording-*_physioevents.tsv.gz")):
            rf.physioevents[_recording(p.name)] = p
        beh = folder.parent / "beh"
        for p in sorted(beh.glob(f"{stem}_*")) if beh.is_dir() else []:
            if p.suffix == ".json" or "frametimes" in p.name:
                continue
            kind = p.name.split(".")[0].rsplit("_", 1)[-1]
            if kind == "audio":
                rf.audio.append(p)
            elif kind in ("video", "audiovideo"):
                rf.video.append(p)
        runs.append(rf)
    return runs


def _if_file(p: Path) -> Path | None:
    return p if p.is_file() else None


def _eeg_json(run: RunFiles) -> dict:
    if run.eeg_json is None:
        return {}
    try:
        data = json.loads(run.eeg_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _duration_from_file(path: Path) -> float | None:
    """Length (s) from a BrainVision header + data size or an EDF/BDF header."""
    try:
        if path.suffix == ".vhdr":
            text = path.read_text(encoding="utf-8", errors="replace")
            kv = dict(re.findall(r"^\s*(\w+)\s*=\s*(.*?)\s*$", text, flags=re.M))
            n_ch = int(kv["NumberOfChannels"])
            interval_us = float(kv["SamplingInterval"])
            data = path.with_name(kv["DataFile"])
            n_bytes = _BV_BYTES.get(kv.get("BinaryFormat", "IEEE_FLOAT_32"), 4)
            return data.stat().st_size / (n_ch * n_bytes) * interval_us * 1e-6
        if path.suffix in (".edf", ".bdf"):
            with open(path, "rb") as f:
                head = f.read(256)
            return int(head[236:244]) * float(head[244:252])
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return None
    return None


def eeg_duration(run: RunFiles) -> tuple[float | None, float | None]:
    """EEG length and sampling rate of a run.

    Returns
    -------
    duration_s : float | None
        ``RecordingDuration`` of ``eeg.json``, else from the data file (s).
    sfreq_hz : float | None
        ``SamplingFrequency`` of ``eeg.json`` (Hz).
    """
    meta = _eeg_json(run)
    sfreq = meta.get("SamplingFrequency")
    sfreq = float(sfreq) if isinstance(sfreq, int | float) and sfreq > 0 else None
    dur = meta.get("RecordingDuration")
    if isinstance(dur, int | float):
        return float(dur), sfreq
    return (_duration_from_file(run.eeg) if run.eeg is not None else None), sfreq


class RunRow(BaseModel):
    """One run of the dataset report.

    Attributes
    ----------
    subject, session, task, run : str
    duration_s : float | None
        EEG length (s); None when unknown.
    modalities : list of str
        Present: ``eeg, events, eyetrack, eyetrack-screen, physioevents, audio, video``.
    missing : dict of str to str
        Required modality → why it is absent.
    n_events : int
        Rows in ``events.tsv``.
    n_trials : int
        Distinct values of the ``trial`` column (else ``trial_start`` rows).
    source : str
        Session folder the run came from (manifest); ``""`` when de-identified or unknown.
    """

    subject: str
    session: str
    task: str
    run: str
    duration_s: float | None = None
    modalities: list[str] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict)
    n_events: int = 0
    n_trials: int = 0
    source: str = ""

    def stem(self) -> str:
        """``sub-X[_ses-Y]_task-Z[_run-NN]``."""
        parts = [
            f"sub-{self.subject}",
            f"ses-{self.session}" if self.session else "",
            f"task-{self.task}",
            f"run-{self.run}" if self.run else "",
        ]
        return "_".join(p for p in parts if p)


class DatasetReport(BaseModel):
    """Subjects × sessions × runs of a BIDS dataset.

    Attributes
    ----------
    root : str
        Dataset root as given.
    rows : list of RunRow
    subjects, sessions : list of str
        Distinct labels, sorted.
    n_runs : int
    total_duration_s : float
        Sum of the known run durations (s).
    missing : dict of str to int
        Modality → number of runs missing it.
    deidentified : bool
        The manifest says subject labels are pseudonyms.
    """

    root: str
    rows: list[RunRow] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    sessions: list[str] = Field(default_factory=list)
    n_runs: int = 0
    total_duration_s: float = 0.0
    missing: dict[str, int] = Field(default_factory=dict)
    deidentified: bool = False


def _event_counts(tsv: Path | None) -> tuple[int, int]:
    if tsv is None:
        return 0, 0
    try:
        cols, rows = read_tsv(tsv)
    except (OSError, UnicodeDecodeError):
        return 0, 0
    if "trial" in cols:
        i = cols.index("trial")
        trials = {r[i] for r in rows if len(r) > i and r[i] != "n/a"}
        return len(rows), len(trials)
    if "trial_type" in cols:
        i = cols.index("trial_type")
        return len(rows), sum(1 for r in rows if len(r) > i and r[i] == "trial_start")
    return len(rows), 0


def _missing(run: RunFiles, entry: RunManifest | None, task_union: set[str]) -> dict[str, str]:
    """Return required modalities without files, and those the converter gave a reason for."""
    have = set(run.modalities())
    if entry is not None:
        wanted = [*entry.required, *(m for m in entry.missing_reasons if m not in entry.required)]
        return {
            m: entry.missing_reasons.get(m, "required by the protocol; no file written")
            for m in wanted
            if m not in have
        }
    return {m: f"other runs of task {run.task} have it" for m in sorted(task_union - have)}


def dataset_report(root: Path) -> DatasetReport:
    """Summarize a BIDS dataset (with avlab's manifest when present).

    Parameters
    ----------
    root : Path
        BIDS dataset root.

    Returns
    -------
    DatasetReport
    """
    manifest = DatasetManifest.load(root)
    entries = {r.key(): r for r in manifest.runs}
    runs = find_runs(root)
    unions: dict[str, set[str]] = {}
    for r in runs:
        unions.setdefault(r.task, set()).update(
            m for m in r.modalities() if m in ("eeg", "events", "eyetrack", "audio", "video")
        )
    rows = []
    for r in runs:
        entry = entries.pop(r.key(), None)
        n_events, n_trials = _event_counts(r.events_tsv)
        rows.append(
            RunRow(
                subject=r.subject,
                session=r.session,
                task=r.task,
                run=r.run,
                duration_s=eeg_duration(r)[0],
                modalities=r.modalities(),
                missing=_missing(r, entry, unions[r.task]),
                n_events=n_events,
                n_trials=n_trials,
                source=entry.source if entry is not None else "",
            )
        )
    for entry in entries.values():  # in the manifest, gone from the tree
        rows.append(
            RunRow(
                subject=entry.subject,
                session=entry.session,
                task=entry.task,
                run=entry.run,
                duration_s=entry.duration_s,
                missing={
                    m: "listed in the manifest, no file in the dataset"
                    for m in entry.required or ["eeg"]
                },
                source=entry.source,
            )
        )
    rows.sort(key=lambda x: (x.subject, x.session, x.task, x.run))
    missing: dict[str, int] = {}
    for row in rows:
        for m in row.missing:
            missing[m] = missing.get(m, 0) + 1
    return DatasetReport(
        root=str(root),
        rows=rows,
        subjects=sorted({x.subject for x in rows}),
        sessions=sorted({x.session for x in rows if x.session}),
        n_runs=len(rows),
        total_duration_s=sum(x.duration_s or 0.0 for x in rows),
        missing=missing,
        deidentified=manifest.deidentified,
    )


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "?"
    m, sec = divmod(s, 60.0)
    return f"{int(m)}:{sec:04.1f}" if m else f"{sec:.1f} s"


def print_dataset_report(rep: DatasetReport, console: Console) -> None:
    """Print the report as a rich table; missing modalities in red.

    Parameters
    ----------
    rep : DatasetReport
    console : rich.console.Console
    """
    from rich.table import Table

    table = Table(title=f"BIDS dataset {rep.root}")
    for col, justify in (
        ("run", "left"),
        ("duration", "right"),
        ("events", "right"),
        ("trials", "right"),
        ("present", "left"),
        ("missing", "left"),
        ("source", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in rep.rows:
        miss = "; ".join(f"[red]{m}[/] ({why})" for m, why in row.missing.items())
        table.add_row(
            row.stem(),
            _fmt_duration(row.duration_s),
            str(row.n_events),
            str(row.n_trials),
            ", ".join(row.modalities),
            miss or "-",
            row.source or "-",
        )
    console.print(table)
    line = (
        f"{len(rep.subjects)} subjects, {len(rep.sessions)} sessions, {rep.n_runs} runs, "
        f"{_fmt_duration(rep.total_duration_s)} of EEG"
    )
    if rep.missing:
        line += "; missing: " + ", ".join(
            f"[red]{m}[/] in {n} runs" for m, n in rep.missing.items()
        )
    console.print(line)
    if rep.deidentified:
        console.print("[yellow]De-identified: sourcedata/avlab/ holds the key; do not share it.[/]")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}td.num{text-align:right}.missing{color:#b00;font-weight:bold}
.summary li{margin:2px 0}svg text{font-size:12px;font-family:system-ui,sans-serif}"""


def _svg_bars(rep: DatasetReport) -> str:
    per: dict[str, float] = {}
    for row in rep.rows:
        per[row.subject] = per.get(row.subject, 0.0) + (row.duration_s or 0.0)
    if not per:
        return ""
    top = max(per.values()) or 1.0
    bar_h, label_w, width = 20, 90, 420
    h = bar_h * len(per) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 90}" '
        f'height="{h}" role="img" aria-label="EEG minutes per subject">'
    ]
    for i, (sub, dur) in enumerate(sorted(per.items())):
        y = 5 + i * bar_h
        w = width * dur / top
        parts.append(
            f'<text x="0" y="{y + 14}">sub-{html.escape(sub)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 6}" '
            f'fill="#4a7ab5"/><text x="{label_w + w + 5:.1f}" y="{y + 14}">'
            f"{dur / 60:.1f} min</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def write_html(rep: DatasetReport, path: Path) -> Path:
    """Write the report as one self-contained HTML page (inline CSS and SVG, no scripts).

    Parameters
    ----------
    rep : DatasetReport
    path : Path
        Output ``.html`` file (its folder is created).

    Returns
    -------
    Path
        ``path``.
    """
    e = html.escape
    head = ["run", "duration", "events", "trials", "present", "missing", "source"]
    body = []
    for row in rep.rows:
        miss = "; ".join(
            f'<span class="missing">{e(m)}</span> ({e(why)})' for m, why in row.missing.items()
        )
        cells = [
            e(row.stem()),
            e(_fmt_duration(row.duration_s)),
            str(row.n_events),
            str(row.n_trials),
            e(", ".join(row.modalities)),
            miss or "-",
            e(row.source) or "-",
        ]
        cls = ["", "num", "num", "num", "", "", ""]
        body.append(
            "<tr>"
            + "".join(
                f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
                for c, v in zip(cls, cells, strict=True)
            )
            + "</tr>"
        )
    missing = (
        ", ".join(
            f'<span class="missing">{e(m)}</span> in {n} runs' for m, n in rep.missing.items()
        )
        or "none"
    )
    deid = (
        "<li>De-identified: <code>sourcedata/avlab/</code> holds the key; do not share it.</li>"
        if rep.deidentified
        else ""
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>BIDS dataset report: {e(rep.root)}</title>
<style>{_CSS}</style></head><body>
<h1>BIDS dataset report</h1>
<ul class="summary"><li>Dataset: <code>{e(rep.root)}</code></li>
<li>{len(rep.subjects)} subjects, {len(rep.sessions)} sessions, {rep.n_runs} runs</li>
<li>Total EEG: {rep.total_duration_s / 60:.1f} min</li><li>Missing: {missing}</li>{deid}</ul>
<h2>EEG per subject</h2>
{_svg_bars(rep)}
<h2>Runs</h2>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""
    atomic_write_bytes(path, page.encode("utf-8"))
    logger.info("wrote %s", path)
    return path
