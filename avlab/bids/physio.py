"""Eye tracking as BIDS 1.11 physio: gaze samples, eye events, screen-mapped gaze.

For each stream of type ``Gaze`` (``recording-eye1``, ``eye2`` … in file order) this
writes, beside the EEG of the run:

- ``<stem>_recording-eyeN_physio.tsv.gz/.json``: the tracker's own output, scene-camera
  pixels of a head-mounted camera (``SampleCoordinateSystem: eye-in-head``,
  ``RecordedEye: cyclopean``), with ``timestamp`` = seconds on the EEG file's time line
  (:mod:`avlab.bids.timeline`) of every sample, so irregular or drifting gaze stays exact;
- ``<stem>_recording-eyeN_physioevents.tsv.gz/.json``: blinks (runs of the ``blink``
  channel), fixations and saccades by I-VT (:class:`IvtConfig`);
- ``<stem>_recording-eyeNscreen_physio…``: the same gaze on the screen
  (``gaze-on-screen``, pixels, origin top-left) with the same events, only when a
  scene → screen mapping exists and the screen's size and distance are known (the
  validator demands them). Today only simulated sessions have a mapping: the simulated
  participant's gaze is :func:`avlab.sim.participant.screen_to_scene` of a screen
  position, inverted exactly by :func:`avlab.devices.screen.sim_scene_homography`.

Files are headerless, deterministic ``.tsv.gz`` (gzip mtime 0, no name); gaze is read
in blocks, so an hour at 200 Hz needs a few tens of MB.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from avlab import _format as fmt
from avlab._logging import logger
from avlab.bids._io import write_json, write_tsv_gz
from avlab.bids.models import BidsRun, LabInfo
from avlab.bids.timeline import Timeline
from avlab.session import Session, StreamInfo

__all__ = [
    "SCENE_CAMERA_FOV_DEG",
    "SCENE_CAMERA_PX",
    "IvtConfig",
    "PhysioEvents",
    "ScreenGeometry",
    "read_physio",
    "read_physioevents",
    "stream_desc",
    "write_eyetracking",
]

#: Neon scene camera image, pixels (width, height); used when the stream does not say.
SCENE_CAMERA_PX = (1600, 1200)
#: Neon scene camera field of view, degrees (horizontal, vertical), spread linearly over
#: :data:`SCENE_CAMERA_PX` to turn pixel velocities into angular ones (an approximation:
#: the lens is wide-angle and distorts towards the edges).
SCENE_CAMERA_FOV_DEG = (103.0, 77.0)
_BLOCK_ROWS = 60_000  # gaze samples per block (5 min at 200 Hz)
_INVALID, _FIXATION, _SACCADE, _BLINK = 0, 1, 2, 3
_KIND = {_FIXATION: "fixation", _SACCADE: "saccade", _BLINK: "blink"}


@dataclass(frozen=True)
class ScreenGeometry:
    """The presentation screen, as far as it is known.

    Attributes
    ----------
    size_px : tuple of int
        Presenter window (width, height), pixels (``presenter.jsonl`` "open" line).
    size_m : tuple of float | None
        Visible screen (width, height), metres.
    distance_m : float | None
        Eye-to-screen distance, metres.
    """

    size_px: tuple[int, int]
    size_m: tuple[float, float] | None
    distance_m: float | None


@dataclass(frozen=True)
class IvtConfig:
    """Velocity-threshold (I-VT) fixation/saccade detection, after Tobii's I-VT filter.

    The velocity of sample ``i`` is the distance between samples ``i - h`` and ``i + h``
    over their time difference (``2 h`` samples span ``window_s``). Samples faster than
    ``threshold`` are saccade samples, the others fixation samples; blink samples and
    samples without gaze are neither. Fixations separated by at most ``merge_gap_s`` of
    saccade/missing samples and closer than ``merge_distance`` are merged; fixations
    shorter than ``min_fixation_s`` are dropped.

    Attributes
    ----------
    threshold : float
        Velocity threshold, deg/s (``unit="deg/s"``) or pixels/s (``unit="px/s"``).
    unit : {"deg/s", "px/s"}
        Angular velocity (pixels converted with ``fov_deg``) or raw pixel velocity.
    window_s : float
        Velocity window, s.
    merge_gap_s : float
        Longest gap between two fixations that are merged, s.
    merge_distance : float
        Largest distance between the mean positions of merged fixations, degrees (or
        pixels with ``unit="px/s"``).
    min_fixation_s : float
        Shortest fixation kept, s.
    fov_deg : tuple of float
        Scene camera field of view (horizontal, vertical), degrees.
    """

    threshold: float = 30.0
    unit: Literal["deg/s", "px/s"] = "deg/s"
    window_s: float = 0.02
    merge_gap_s: float = 0.075
    merge_distance: float = 0.5
    min_fixation_s: float = 0.06
    fov_deg: tuple[float, float] = SCENE_CAMERA_FOV_DEG

    def __post_init__(self) -> None:
        if self.unit not in ("deg/s", "px/s"):
            raise ValueError(f"IvtConfig.unit={self.unit!r} must be 'deg/s' or 'px/s'")
        for name in ("threshold", "window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"IvtConfig.{name}={getattr(self, name)!r} must be > 0")
        for name in ("merge_gap_s", "merge_distance", "min_fixation_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"IvtConfig.{name}={getattr(self, name)!r} must be >= 0")

    def describe(self, image_px: tuple[int, int]) -> str:
        """One sentence for the physioevents sidecar."""
        deg = (
            f"degrees from scene-camera pixels assuming a {self.fov_deg[0]:g} x "
            f"{self.fov_deg[1]:g} degree field of view spread linearly over "
            f"{image_px[0]} x {image_px[1]} pixels (Neon scene camera; approximate towards "
            "the image edges)"
            if self.unit == "deg/s"
            else "scene-camera pixels"
        )
        dist = "degrees" if self.unit == "deg/s" else "pixels"
        return (
            "Blinks: runs of the eye tracker's blink channel. Fixations and saccades: I-VT "
            f"with a velocity threshold of {self.threshold:g} {self.unit}, velocity over a "
            f"{self.window_s * 1e3:g} ms window, {deg}; fixations less than "
            f"{self.merge_gap_s * 1e3:g} ms and {self.merge_distance:g} {dist} apart merged, "
            f"fixations shorter than {self.min_fixation_s * 1e3:g} ms dropped."
        )


@dataclass(frozen=True)
class PhysioEvents:
    """Rows of a ``_physioevents.tsv.gz``.

    Attributes
    ----------
    onset : ndarray, shape (n_events,)
        Seconds on the EEG file's time line.
    duration : ndarray, shape (n_events,)
        Seconds.
    trial_type : list of str
        ``blink``, ``fixation`` or ``saccade``.
    message : list of str
        ``n/a`` for detected events.
    """

    onset: np.ndarray
    duration: np.ndarray
    trial_type: list[str]
    message: list[str]

    def __len__(self) -> int:
        return int(self.onset.size)

    def count(self, kind: str) -> int:
        """Return how many events have ``trial_type == kind``."""
        return sum(1 for t in self.trial_type if t == kind)

    def of(self, kind: str) -> np.ndarray:
        """Return the rows of one kind as an array of ``(onset, duration)``, shape (n, 2)."""
        mask = np.array([t == kind for t in self.trial_type], dtype=bool)
        return np.column_stack([self.onset, self.duration])[mask] if mask.size else np.zeros((0, 2))


def stream_desc(session: Session, info: StreamInfo) -> ET.Element | None:
    """Return the ``<desc>`` element of a stream's LSL XML, or None.

    The XML also names hosts and paths: use it for reading, never copy it into output.
    """
    with h5py.File(session.path, "r", swmr=session.swmr) as h5:
        xml = h5[fmt.STREAMS_GROUP][info.key].attrs.get("info_xml", "")
    xml = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else str(xml)
    if not xml:
        return None
    try:
        return ET.fromstring(xml).find("desc")
    except ET.ParseError as exc:
        logger.warning("stream %r: unreadable LSL info XML (%s)", info.name, exc)
        return None


# -- channel layout ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Pupil:
    index: int
    column: str
    unit: str
    kind: str  # "diameter", "area" or ""


@dataclass(frozen=True)
class _Layout:
    x: int
    y: int
    pupils: tuple[_Pupil, ...]
    blink: int | None
    image_px: tuple[int, int]
    simulated: bool


def _int_text(node: ET.Element | None, path: str, default: int) -> int:
    text = node.findtext(path) if node is not None else None
    try:
        return int(float(text)) if text else default
    except ValueError:
        return default


def _layout(session: Session, info: StreamInfo) -> _Layout | None:
    desc = stream_desc(session, info)
    nodes = desc.findall("channels/channel") if desc is not None else []
    if len(nodes) != info.channel_count:
        nodes = []
    labels = list(info.channel_labels)
    if len(labels) != info.channel_count:
        labels = [(n.findtext("label") or "").strip() for n in nodes] or [""] * info.channel_count
    types = [(n.findtext("type") or "").strip().lower() for n in nodes] or [""] * len(labels)
    units = [(n.findtext("unit") or "").strip() for n in nodes] or [""] * len(labels)
    low = [lb.strip().lower() for lb in labels]

    def find(label: str, ctype: str) -> int | None:
        hits = [i for i in range(len(low)) if low[i] == label or types[i] == ctype]
        return hits[0] if hits else None

    x, y = find("x", "gazex"), find("y", "gazey")
    if x is None or y is None:
        if info.channel_count < 2:
            return None
        logger.warning(
            "stream %r: no channels labelled x/y (labels %s); the first two are taken as "
            "gaze x, y in scene-camera pixels",
            info.name, labels,
        )  # fmt: skip
        x, y = 0, 1
    blink = find("blink", "blink")
    pupils = []
    for i in range(len(low)):
        if i in (x, y, blink) or not (low[i].startswith("pupil") or "pupil" in types[i]):
            continue
        name = re.sub(r"[^a-z0-9_]", "_", low[i]) or f"pupil_{i}"
        column = "pupil_size" if name == "pupil" else name
        kind = "area" if "area" in types[i] else "diameter" if "diameter" in types[i] else ""
        unit = units[i] or ("mm" if kind == "diameter" else "")
        pupils.append(_Pupil(i, column, unit, kind or ("diameter" if unit == "mm" else "")))
    width = _int_text(desc, "acquisition/camera_width", SCENE_CAMERA_PX[0])
    height = _int_text(desc, "acquisition/camera_height", SCENE_CAMERA_PX[1])
    simulated = desc is not None and desc.find("avlab_sim") is not None
    return _Layout(x, y, tuple(pupils), blink, (width, height), simulated)


# -- I-VT ----------------------------------------------------------------------------------
@dataclass
class _Run:
    label: int
    onset: float
    end: float
    sx: float
    sy: float
    n: int


class _Detector:
    """Labels gaze samples block by block (velocity window carried across blocks)."""

    def __init__(self, cfg: IvtConfig, image_px: tuple[int, int], fs: float) -> None:
        self.cfg = cfg
        self.half = max(1, int(round(cfg.window_s * fs / 2.0)))
        self.period = 1.0 / fs
        if cfg.unit == "deg/s":
            self.kx, self.ky = cfg.fov_deg[0] / image_px[0], cfg.fov_deg[1] / image_px[1]
        else:
            self.kx = self.ky = 1.0
        self._buf = np.zeros((0, 4))  # columns t, x, y, blink: context + pending samples
        self._ctx = 0  # rows of _buf already labelled (kept as velocity context)
        self.runs: list[_Run] = []
        self._last_t = math.nan

    def feed(self, t: np.ndarray, x: np.ndarray, y: np.ndarray, blink: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, np.column_stack([t, x, y, blink])])
        self._label(final=False)

    def finish(self) -> None:
        self._label(final=True)
        if self.runs:
            self.runs[-1].end = self._last_t + self.period

    def _label(self, *, final: bool) -> None:
        buf, h = self._buf, self.half
        n = buf.shape[0]
        start, stop = self._ctx, (n if final else n - h)
        if stop <= start:
            return
        idx = np.arange(start, stop)
        lo, hi = np.maximum(idx - h, 0), np.minimum(idx + h, n - 1)
        t, x, y = buf[:, 0], buf[:, 1], buf[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            speed = np.hypot((x[hi] - x[lo]) * self.kx, (y[hi] - y[lo]) * self.ky) / (t[hi] - t[lo])
        lab = np.where(speed > self.cfg.threshold, _SACCADE, _FIXATION)
        lab[~np.isfinite(speed) | ~np.isfinite(x[idx]) | ~np.isfinite(y[idx])] = _INVALID
        lab[buf[idx, 3] > 0.5] = _BLINK
        self._add_runs(t[idx], x[idx], y[idx], lab)
        keep = max(stop - h, 0)
        self._buf, self._ctx = buf[keep:], stop - keep

    def _add_runs(self, t: np.ndarray, x: np.ndarray, y: np.ndarray, lab: np.ndarray) -> None:
        starts = np.concatenate([[0], np.flatnonzero(np.diff(lab)) + 1])
        sx = np.add.reduceat(np.nan_to_num(x), starts)
        sy = np.add.reduceat(np.nan_to_num(y), starts)
        counts = np.diff(np.concatenate([starts, [lab.size]]))
        for k, s in enumerate(starts):
            label = int(lab[s])
            if self.runs and self.runs[-1].label == label and math.isnan(self.runs[-1].end):
                run = self.runs[-1]  # continues across the block boundary
                run.sx, run.sy, run.n = run.sx + sx[k], run.sy + sy[k], run.n + int(counts[k])
                continue
            if self.runs:
                self.runs[-1].end = float(t[s])
            self.runs.append(_Run(label, float(t[s]), math.nan, sx[k], sy[k], int(counts[k])))
        self._last_t = float(t[-1])

    def events(self) -> PhysioEvents:
        """Merge, filter and return the detected events (call after :meth:`finish`)."""
        cfg = self.cfg
        merged: list[_Run] = []
        for run in self.runs:
            if run.label == _FIXATION:
                j = len(merged) - 1
                while j >= 0 and merged[j].label in (_SACCADE, _INVALID):
                    j -= 1
                if j >= 0 and merged[j].label == _FIXATION and self._close(merged[j], run):
                    prev = merged[j]
                    prev.end, prev.sx, prev.sy, prev.n = (
                        run.end,
                        prev.sx + run.sx,
                        prev.sy + run.sy,
                        prev.n + run.n,
                    )
                    del merged[j + 1 :]
                    continue
            merged.append(_Run(run.label, run.onset, run.end, run.sx, run.sy, run.n))
        rows = [
            (r.onset, r.end - r.onset, _KIND[r.label])
            for r in merged
            if r.label in (_SACCADE, _BLINK)
            or (r.label == _FIXATION and r.end - r.onset >= cfg.min_fixation_s - 1e-9)
        ]
        return PhysioEvents(
            onset=np.array([r[0] for r in rows], dtype=np.float64),
            duration=np.array([r[1] for r in rows], dtype=np.float64),
            trial_type=[r[2] for r in rows],
            message=["n/a"] * len(rows),
        )

    def _close(self, a: _Run, b: _Run) -> bool:
        if b.onset - a.end > self.cfg.merge_gap_s + 1e-9:
            return False
        dx = (a.sx / a.n - b.sx / b.n) * self.kx
        dy = (a.sy / a.n - b.sy / b.n) * self.ky
        return math.hypot(dx, dy) <= self.cfg.merge_distance


# -- writing -------------------------------------------------------------------------------
def _scene_to_screen(x: np.ndarray, y: np.ndarray, size_px: tuple[int, int]) -> np.ndarray:
    """Map simulated scene-camera pixels to screen pixels (origin top-left, y down)."""
    from avlab.devices.screen import sim_scene_homography

    hom = sim_scene_homography()
    p = hom @ np.vstack([x, y, np.ones_like(x)])
    xh, yh = p[0] / p[2], p[1] / p[2]  # PsychoPy height units, origin centre, y up
    w, h = size_px
    return np.column_stack([xh * h + w / 2.0, h / 2.0 - yh * h])


def _columns(
    layout: _Layout, *, screen: ScreenGeometry | None
) -> tuple[list[str], list[str], dict[str, Any]]:
    if screen is None:
        w, h = layout.image_px
        where = f"scene-camera image pixels ({w}x{h}"
    else:
        w, h = screen.size_px
        where = f"screen pixels (presenter window {w}x{h}"
    names = ["timestamp", "x_coordinate", "y_coordinate"]
    fmts = ["%.6f", "%.2f", "%.2f"]
    meta: dict[str, Any] = {
        "timestamp": {
            "Description": "Sample time on the EEG recording's time line (0 = first EEG sample).",
            "Units": "s",
        },
        "x_coordinate": {
            "Description": f"Gaze x in {where}, origin top-left, x right).",
            "Units": "pixel",
        },
        "y_coordinate": {
            "Description": f"Gaze y in {where}, origin top-left, y down).",
            "Units": "pixel",
        },
    }
    for p in layout.pupils:
        names.append(p.column)
        fmts.append("%.4f")
        side = next((s for s in ("left", "right") if s in p.column), "")
        what = f"Pupil {p.kind}" if p.kind else "Pupil size (diameter or area not recorded)"
        entry: dict[str, Any] = {"Description": f"{what}{f' of the {side} eye' if side else ''}."}
        if p.unit:
            entry["Units"] = p.unit
        meta[p.column] = entry
    if layout.blink is not None:
        names.append("blink")
        fmts.append("%.0f")
        meta["blink"] = {
            "Description": "1 while the eye tracker reports a blink, else 0.",
            "Levels": {"0": "No blink.", "1": "Blink."},
        }
    return names, fmts, meta


def _sidecar(
    columns: list[str], meta: dict[str, Any], *, run: BidsRun, fs: float, start: float,
    lab: LabInfo, layout: _Layout, on_screen: bool,
) -> dict[str, Any]:  # fmt: skip
    device = f"{lab.eyetracker_manufacturer} {lab.eyetracker_model}".strip()
    method = (
        f"Simulated by avlab (a model of the {device}'s output)"
        if layout.simulated
        else f"{device}, head-mounted; binocular gaze estimate in scene-camera pixels"
    )
    if on_screen:
        method += (
            "; mapped onto the screen with the simulated head pose (screen centre at the "
            "scene camera's centre)"
        )
    return {
        "TaskName": run.task,
        "SamplingFrequency": fs,
        "StartTime": start,
        "Columns": columns,
        "PhysioType": "eyetrack",
        "RecordedEye": "cyclopean",
        "SampleCoordinateSystem": "gaze-on-screen" if on_screen else "eye-in-head",
        "Manufacturer": lab.eyetracker_manufacturer,
        "ManufacturersModelName": lab.eyetracker_model,
        "EyeTrackingMethod": method,
        **meta,
    }


def _write_events(path: Path, events: PhysioEvents, *, run: BidsRun, method: str) -> list[Path]:
    if not len(events):
        logger.info("no eye events detected; %s not written", path.name)
        return []
    block = np.empty((len(events), 4), dtype=object)
    block[:, 0], block[:, 1] = events.onset, events.duration
    block[:, 2], block[:, 3] = events.trial_type, events.message
    write_tsv_gz(path, [block], ["%.6f", "%.6f", "%s", "%s"])
    side = path.with_name(path.name.replace(".tsv.gz", ".json"))
    write_json(side, {
        "TaskName": run.task,
        "Description": "Eye events detected by avlab from the gaze samples. " + method,
        "Columns": ["onset", "duration", "trial_type", "message"],
        "OnsetSource": "timestamp",
        "onset": {"Description": "Start on the EEG recording's time line.", "Units": "s"},
        "duration": {"Description": "Length of the event.", "Units": "s"},
        "trial_type": {
            "Description": "Kind of eye event.",
            "Levels": {
                "blink": "The eye tracker reported a blink.",
                "fixation": "Gaze velocity below the I-VT threshold.",
                "saccade": "Gaze velocity above the I-VT threshold.",
            },
        },
        "message": {"Description": "Message from the eye tracker (none recorded: n/a)."},
    })  # fmt: skip
    return [path, side]


def _screen_reason(layout: _Layout, screen: ScreenGeometry | None) -> str:
    if not layout.simulated:
        return "no scene-to-screen mapping was recorded (real sessions have none yet)"
    if screen is None:
        return "the presenter window size is unknown (no presenter.jsonl 'open' line)"
    if screen.size_m is None or screen.distance_m is None:
        return (
            "the screen size and distance are unknown (lab.json screen_size_m and "
            "screen_distance_m, or --screen-size/--screen-distance)"
        )
    return ""


def write_eyetracking(
    session: Session,
    timeline: Timeline,
    run: BidsRun,
    out_dir: Path,
    *,
    lab: LabInfo,
    screen: ScreenGeometry | None,
    ivt: IvtConfig | None = None,
) -> list[Path]:
    """Write the session's gaze as BIDS eye-tracking physio files.

    Parameters
    ----------
    session : Session
        The open session.
    timeline : Timeline
        The run's EEG time line (all times in the files are on it).
    run : BidsRun
        Where the run lands (file-name stem, task label).
    out_dir : Path
        The run's ``eeg/`` folder.
    lab : LabInfo
        Eye-tracker manufacturer and model.
    screen : ScreenGeometry | None
        The presentation screen; the screen-mapped file needs its size and distance.
    ivt : IvtConfig | None
        Fixation/saccade detection settings (default :class:`IvtConfig`).

    Returns
    -------
    paths : list of Path
        Files written (``.tsv.gz`` and ``.json``), in order; empty without gaze.
    """
    cfg = ivt or IvtConfig()
    written: list[Path] = []
    gaze = [i for i in session.streams if i.type.lower() == "gaze"]
    for k, info in enumerate(gaze, 1):
        label = f"eye{k}"
        layout = _layout(session, info)
        if info.n_samples < 2 or info.nominal_srate <= 0 or layout is None:
            logger.warning(
                "gaze stream %r has %d samples at %g Hz with %d channels; recording-%s not "
                "written", info.name, info.n_samples, info.nominal_srate, info.channel_count, label,
            )  # fmt: skip
            continue
        written += _write_stream(
            session, timeline, run, out_dir, info, label, layout, lab, screen, cfg
        )
    return written


def _write_stream(
    session: Session, timeline: Timeline, run: BidsRun, out_dir: Path, info: StreamInfo,
    label: str, layout: _Layout, lab: LabInfo, screen: ScreenGeometry | None, cfg: IvtConfig,
) -> list[Path]:  # fmt: skip
    fs = float(info.nominal_srate)
    tau = timeline.tau(session.aligned_times(info).times)
    start = float(f"{tau[0]:.6f}")
    detector = _Detector(cfg, layout.image_px, fs)

    def blocks(mapped: ScreenGeometry | None) -> Iterator[np.ndarray]:
        for first, raw in session.iter_blocks(info, _BLOCK_ROWS):
            data = raw.astype(np.float64)
            t = tau[first : first + data.shape[0]]
            x, y = data[:, layout.x], data[:, layout.y]
            blink = data[:, layout.blink] if layout.blink is not None else None
            if mapped is None:
                detector.feed(t, x, y, blink if blink is not None else np.zeros_like(x))
                xy = np.column_stack([x, y])
            else:
                xy = _scene_to_screen(x, y, mapped.size_px)
            extra = [data[:, p.index] for p in layout.pupils]
            yield np.column_stack([t, xy, *extra, *([blink] if blink is not None else [])])
        if mapped is None:
            detector.finish()

    stem = f"{run.stem()}_recording-{label}"
    method = cfg.describe(layout.image_px)
    out: list[Path] = []
    reason = _screen_reason(layout, screen)
    targets: list[tuple[str, ScreenGeometry | None]] = [(stem, None)]
    if reason:
        logger.warning("stream %r: screen-mapped gaze (recording-%sscreen) not written: %s.",
                       info.name, label, reason)  # fmt: skip
    else:
        targets.append((f"{stem}screen", screen))
    events: PhysioEvents | None = None
    for name, mapped in targets:
        columns, fmts, meta = _columns(layout, screen=mapped)
        tsv = out_dir / f"{name}_physio.tsv.gz"
        n = write_tsv_gz(tsv, blocks(mapped), fmts)
        side = out_dir / f"{name}_physio.json"
        write_json(side, _sidecar(columns, meta, run=run, fs=fs, start=start, lab=lab,
                                  layout=layout, on_screen=mapped is not None))  # fmt: skip
        logger.info("wrote %s (%d samples)", tsv.name, n)
        if events is None:
            events = detector.events()
        out += [tsv, side]
        out += _write_events(
            out_dir / f"{name}_physioevents.tsv.gz", events, run=run, method=method
        )
    return out


# -- reading -------------------------------------------------------------------------------
def _sidecar_of(path: Path) -> dict[str, Any]:
    side = path.with_name(path.name.replace(".tsv.gz", ".json"))
    return json.loads(side.read_text(encoding="utf-8"))


def read_physio(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a ``_physio.tsv.gz`` and its sidecar.

    Parameters
    ----------
    path : Path
        The ``…_physio.tsv.gz`` file (the ``.json`` beside it is read too).

    Returns
    -------
    sidecar : dict
        The JSON sidecar.
    columns : dict of str to ndarray, shape (n_samples,)
        One float64 array per name in ``sidecar["Columns"]``; ``n/a`` is NaN.
    """
    import pandas as pd

    meta = _sidecar_of(path)
    names = list(meta["Columns"])
    df = pd.read_csv(
        path, sep="\t", header=None, names=names, na_values=["n/a"], keep_default_na=False,
        dtype=np.float64, compression="gzip",
    )  # fmt: skip
    return meta, {c: df[c].to_numpy(dtype=np.float64) for c in names}


def read_physioevents(path: Path) -> tuple[dict[str, Any], PhysioEvents]:
    """Read a ``_physioevents.tsv.gz`` and its sidecar.

    Parameters
    ----------
    path : Path
        The ``…_physioevents.tsv.gz`` file.

    Returns
    -------
    sidecar : dict
        The JSON sidecar.
    events : PhysioEvents
        Onsets and durations in seconds; ``n/a`` durations are NaN.
    """
    meta = _sidecar_of(path)
    cols = list(meta["Columns"])
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]

    def col(name: str) -> list[str]:
        i = cols.index(name) if name in cols else -1
        return [r[i] if i >= 0 and i < len(r) else "n/a" for r in rows]

    def num(values: list[str]) -> np.ndarray:
        return np.array([math.nan if v == "n/a" else float(v) for v in values], dtype=np.float64)

    return meta, PhysioEvents(
        onset=num(col("onset")),
        duration=num(col("duration")),
        trial_type=col("trial_type"),
        message=col("message"),
    )
