"""What ``avlab inspect`` reports: a pydantic summary of a session.

``samples_lost`` (per stream) is defined as follows. The stream's aligned,
dejittered times are split into segments at every recorded gap and at every
jump of the stamps that :func:`avlab.sync.dejitter` detects. For each boundary
between a segment ending at fitted time ``t_last`` and the next starting at
``t_first`` (seconds, recorder clock)::

    lost = max(0, round((t_first - t_last) * rate) - 1)

with ``rate`` the stream's effective rate (the dejitter fit, i.e. the source's
true rate on the recorder's clock; the nominal rate if it cannot be estimated).
``samples_lost`` is the sum over boundaries. Using fitted times instead of raw
stamps keeps the count exact under arrival jitter of several sample periods;
using the effective rate keeps it exact under a ±100 ppm rate error over long
gaps. Samples before the first recorded sample are not counted: a source that
starts after the recorder has lost nothing, and LSL gives no way to tell the
two apart. Irregular streams (nominal rate 0) lose nothing by this definition.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from avlab import _format as fmt
from avlab.session.models import StreamInfo
from avlab.session.reader import Session
from avlab.sync import AlignedTimes

__all__ = [
    "ClockStats",
    "SessionSummary",
    "StreamSummary",
    "SyncError",
    "print_summary",
    "samples_lost",
    "summarize",
]


def _f(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class SyncError(BaseModel):
    """|aligned time − true time| of matched samples, in milliseconds."""

    model_config = ConfigDict(extra="forbid")

    median: float
    p99: float
    max: float
    n: int
    bias: float  # median signed error (aligned − true), ms


class ClockStats(BaseModel):
    """Clock offsets of one stream: seconds, milliseconds, ppm."""

    model_config = ConfigDict(extra="forbid")

    method: str
    n: int
    median_offset_s: float | None
    spread_ms: float | None
    drift_ppm: float | None
    residual_rms_ms: float | None
    outliers: int


class StreamSummary(BaseModel):
    """One stream as ``avlab inspect`` shows it (rates in Hz, durations in s)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    name: str
    type: str
    channels: int
    channel_format: str
    nominal_srate: float
    effective_srate: float | None
    duration_s: float
    samples: int
    samples_lost: int
    gaps: int
    segments: int
    clock: ClockStats
    dejitter_residual_ms: float | None
    sync_error_ms: SyncError | None = None


class SessionSummary(BaseModel):
    """A whole session: status, size and per-stream summaries."""

    model_config = ConfigDict(extra="forbid")

    path: str
    status: str
    swmr: bool
    file_size_bytes: int
    created: str
    has_truth: bool
    streams: list[StreamSummary]


def samples_lost(aligned: AlignedTimes, nominal_srate: float) -> int:
    """Count samples lost at segment boundaries (definition in the module docstring).

    Parameters
    ----------
    aligned : AlignedTimes
        The stream's alignment.
    nominal_srate : float
        Nominal rate in Hz (fallback when no effective rate is known).

    Returns
    -------
    lost : int
    """
    dj = aligned.dejitter
    if dj is None or nominal_srate <= 0 or dj.n_segments < 2:
        return 0
    rate = dj.effective_srate if math.isfinite(dj.effective_srate) else nominal_srate
    starts = dj.segment_starts[1:]
    dt = dj.times[starts] - dj.times[starts - 1]
    return int(np.maximum(np.round(dt * rate) - 1, 0).sum())


def _sync_error(session: Session, info: StreamInfo, aligned: AlignedTimes) -> SyncError | None:
    truth = session.truth
    if truth is None or info.name not in truth.streams:
        return None
    stamps = session._raw(info)[1]
    true = truth.match_samples(info.name, stamps)
    ok = np.isfinite(true)
    if not np.any(ok):
        return None
    err = (aligned.times[ok] - true[ok]) * 1e3
    a = np.abs(err)
    return SyncError(
        median=float(np.median(a)),
        p99=float(np.percentile(a, 99)),
        max=float(a.max()),
        n=int(ok.sum()),
        bias=float(np.median(err)),
    )


def _stream_summary(session: Session, info: StreamInfo) -> StreamSummary:
    al = session._align(info)
    q = al.quality
    n_gaps = int(session._rows_gaps(info).shape[0])
    t = al.times
    return StreamSummary(
        key=info.key,
        name=info.name,
        type=info.type,
        channels=info.channel_count,
        channel_format=info.channel_format,
        nominal_srate=info.nominal_srate,
        effective_srate=_f(q.effective_srate),
        duration_s=float(t[-1] - t[0]) if t.size > 1 else 0.0,
        samples=info.n_samples,
        samples_lost=samples_lost(al, info.nominal_srate),
        gaps=n_gaps,
        segments=q.n_segments,
        clock=ClockStats(
            method=info.clock_method,
            n=q.n_offsets,
            median_offset_s=_f(q.offset_median_s),
            spread_ms=_f(q.offset_spread_ms),
            drift_ppm=_f(q.drift_ppm),
            residual_rms_ms=_f(q.offset_residual_rms_ms),
            outliers=q.offset_outliers,
        ),
        dejitter_residual_ms=_f(q.dejitter_residual_rms_ms),
        sync_error_ms=_sync_error(session, info, al),
    )


def summarize(path: str | Path) -> SessionSummary:
    """Summarize a session folder (what ``avlab inspect`` shows).

    Parameters
    ----------
    path : str | Path
        Session folder or its ``session.h5``.

    Returns
    -------
    summary : SessionSummary
    """
    with Session.open(path) as s:
        return SessionSummary(
            path=str(s.folder),
            status=s.status,
            swmr=s.swmr,
            file_size_bytes=s.path.stat().st_size,
            created=str(s.attrs.get("created", "")),
            has_truth=(s.folder / fmt.TRUTH_FILE).is_file(),
            streams=[_stream_summary(s, i) for i in s.streams],
        )


def _num(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


_METHOD_LABELS = {"lsl_time_correction": "LSL", "time_echo": "echo", "none": "–"}


def print_summary(summary: SessionSummary, console: Console | None = None) -> None:
    """Print a summary as rich tables.

    Parameters
    ----------
    summary : SessionSummary
        From :func:`summarize`.
    console : rich.console.Console | None
        Where to print (default: stdout).
    """
    console = console or Console()
    mb = summary.file_size_bytes / 1e6
    console.print(
        f"[bold]{summary.path}[/bold]  status [cyan]{summary.status}[/cyan]  "
        f"{mb:.1f} MB  created {summary.created or '?'}"
    )
    streams = Table(title="streams")
    cols = ("stream", "type", "ch", "nom. Hz", "eff. Hz", "dur s", "samples", "lost", "gaps")
    for c in cols:
        streams.add_column(
            c, justify="left" if c in ("stream", "type") else "right", no_wrap=c == "stream"
        )
    clock = Table(title="clock sync (recorder time = source time + offset)")
    cols = ["stream", "method", "n", "offset s", "drift ppm", "dejit. ms"]
    if summary.has_truth:
        cols += ["err. med ms", "err. p99 ms"]
    for c in cols:
        clock.add_column(
            c, justify="left" if c in ("stream", "method") else "right", no_wrap=c == "stream"
        )
    for st in summary.streams:
        streams.add_row(
            st.name,
            st.type,
            str(st.channels),
            f"{st.nominal_srate:g}",
            _num(st.effective_srate, ".3f"),
            f"{st.duration_s:.1f}",
            str(st.samples),
            str(st.samples_lost),
            str(st.gaps),
        )
        offset = st.clock.median_offset_s or 0.0
        row = [
            st.name,
            _METHOD_LABELS.get(st.clock.method, st.clock.method),
            str(st.clock.n),
            _num(st.clock.median_offset_s, ".4f" if abs(offset) < 1e4 else ".4e"),
            _num(st.clock.drift_ppm, ".2f"),
            _num(st.dejitter_residual_ms, ".3f"),
        ]
        if summary.has_truth:
            e = st.sync_error_ms
            row += ["–", "–"] if e is None else [f"{e.median:.4f}", f"{e.p99:.4f}"]
        clock.add_row(*row)
    console.print(streams)
    console.print(clock)
