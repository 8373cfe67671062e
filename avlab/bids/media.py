"""Participant audio and video in ``beh/`` (BEP047 draft names) and the ``.bidsignore``.

BEP047 (bids-specification PR 2231, still a draft) files recordings of the participant
as ``<stem>_recording-<label>_audio.flac`` / ``_video.mp4`` with a JSON sidecar. The
validator does not know these suffixes yet, so :func:`update_bidsignore` lists them.
Every sidecar has ``StartTime``: seconds of the first sample/frame on the EEG file's
time line (:mod:`avlab.bids.timeline`).

- Real runs: ``mic-<name>.flac`` and ``camera-<name>.mp4`` (found through their LSL
  streams' ``<desc>``, types ``AudioBlocks`` and ``VideoFrames``) are copied byte for
  byte, never re-encoded. A camera's frame times go to
  ``<stem>_recording-<label>_video_frametimes.tsv.gz`` (headerless: frame, timestamp).
- Streams of type ``Audio`` recorded into ``session.h5`` (the simulator's microphone and
  talkers) are encoded as 24-bit FLAC in 10-s blocks.
- A ``VideoFrames`` stream without a video file (the simulator's camera) gives no file;
  the reason is returned for the run's manifest.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import soundfile as sf

from avlab import _format as fmt
from avlab._logging import logger
from avlab.bids._io import atomic_write_bytes, staged, write_json, write_tsv_gz
from avlab.bids.models import BidsRun
from avlab.bids.physio import stream_desc
from avlab.bids.timeline import Timeline
from avlab.errors import OutputError
from avlab.session import Session, StreamInfo
from avlab.sync import align_stream

__all__ = ["BIDSIGNORE_PATTERNS", "MediaFile", "media_label", "update_bidsignore", "write_media"]

#: Lines avlab keeps in ``.bidsignore`` (BEP047 draft files the validator does not know).
BIDSIGNORE_PATTERNS = (
    "*_audio.flac",
    "*_audio.json",
    "*_video.mp4",
    "*_video.json",
    "*_video_frametimes.tsv.gz",
)
_BIDSIGNORE_HEADER = "# avlab: participant audio/video (BEP047 draft, not yet in the validator)"
_AUDIO_BLOCK_S = 10.0
_START_FIT_S = 30.0  # real microphones: block times used for StartTime, s
_STAMPS_PER_S = 1.0  # time stamps of an encoded audio stream used for its start and rate
_SIM_CAMERA = "the simulated camera streams frame numbers only"
_CODECS = {"fmp4": "mpeg4", "mp4v": "mpeg4", "xvid": "mpeg4", "avc1": "h264", "h264": "h264",
           "x264": "h264", "hev1": "hevc", "hvc1": "hevc", "mjpg": "mjpeg", "av01": "av1",
           "vp09": "vp9"}  # fmt: skip


@dataclass(frozen=True)
class MediaFile:
    """One audio or video file written for a run.

    Attributes
    ----------
    path : Path
        The media file (``…_audio.flac`` or ``…_video.mp4``).
    kind : {"audio", "video"}
    label : str
        The ``recording-`` label.
    acq_time : datetime
        Wall clock (UTC) of the first sample/frame, shifted by ``daysback`` if given.
    start_s : float
        First sample/frame on the EEG file's time line, s (the sidecar's ``StartTime``).
    extra_files : tuple of Path
        Companion files written with it: the JSON sidecar and, for video, the frame times.
    """

    path: Path
    kind: Literal["audio", "video"]
    label: str
    acq_time: datetime
    start_s: float
    extra_files: tuple[Path, ...] = ()


def media_label(name: str) -> str:
    """Return the ``recording-`` label for a stream or file name.

    ``sim-Microphone`` → ``microphone``, ``mic-partner.flac`` → ``partner``,
    ``avlab-camera-scene`` → ``scene``: known prefixes and the extension are dropped,
    then everything but lower-case letters and digits.
    """
    stem = Path(name).stem if Path(name).suffix.lower() in (".flac", ".mp4", ".wav") else name
    stem = stem.lower()
    for prefix in ("avlab-", "sim-", "mic-", "camera-"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
    return re.sub(r"[^a-z0-9]", "", stem)


def _unique(label: str, used: set[str], fallback: str) -> str:
    base = label or fallback
    out, k = base, 2
    while out in used:
        out, k = f"{base}{k}", k + 1
    used.add(out)
    return out


def _acq(timeline: Timeline, start_s: float, daysback: int | None) -> datetime:
    acq = timeline.acq_time + timedelta(seconds=start_s)
    return acq - timedelta(days=daysback) if daysback else acq


def write_media(
    session: Session,
    timeline: Timeline,
    run: BidsRun,
    beh_dir: Path,
    *,
    daysback: int | None = None,
) -> tuple[list[MediaFile], dict[str, str]]:
    """Write the run's participant audio and video into ``beh/``.

    Parameters
    ----------
    session : Session
        The open session.
    timeline : Timeline
        The run's EEG time line.
    run : BidsRun
        Where the run lands (file-name stem, task label).
    beh_dir : Path
        The session's ``beh/`` folder (created when a file is written).
    daysback : int | None
        Days subtracted from every ``acq_time`` (de-identification).

    Returns
    -------
    files : list of MediaFile
        In stream order.
    missing : dict of str to str
        Why an ``audio``/``video`` stream gave no file (reasons joined by ``; ``).
    """
    reasons: dict[str, list[str]] = {}
    used: dict[str, set[str]] = {"audio": set(), "video": set()}
    jobs: list[tuple[str, StreamInfo, Callable[[], MediaFile]]] = []
    for info in session.streams:
        kind = info.type.lower()
        if kind not in ("audio", "audioblocks", "videoframes"):
            continue
        modality: Literal["audio", "video"] = "video" if kind == "videoframes" else "audio"
        try:
            jobs.append((modality, info, _job(session, timeline, run, beh_dir, info, kind,
                                              used, daysback)))  # fmt: skip
        except _Missing as exc:
            _note_missing(reasons, modality, info, exc)
    # FLAC encoding and file copies release the GIL: streams are written in parallel
    results: list[MediaFile | None] = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="avlab-media") as pool:
        futures = [pool.submit(job) for _, _, job in jobs]
        for i, (fut, (modality, info, _)) in enumerate(zip(futures, jobs, strict=True)):
            try:
                results[i] = fut.result()
            except _Missing as exc:
                _note_missing(reasons, modality, info, exc)
    files = [r for r in results if r is not None]
    for out in files:
        logger.info("wrote %s", out.path.name)
    return files, {k: "; ".join(v) for k, v in reasons.items()}


def _note_missing(
    reasons: dict[str, list[str]], modality: str, info: StreamInfo, exc: Exception
) -> None:
    logger.warning("%s stream %r: no file written (%s)", modality, info.name, exc)
    reasons.setdefault(modality, []).append(f"{info.name}: {exc}")


def _job(
    session: Session, timeline: Timeline, run: BidsRun, beh_dir: Path, info: StreamInfo,
    kind: str, used: dict[str, set[str]], daysback: int | None,
) -> Callable[[], MediaFile]:  # fmt: skip
    """Check one media stream now (labels in stream order); return the writing to do."""
    if kind == "audio":
        label = _unique(media_label(info.name), used["audio"], "audio")
        return lambda: _encode_audio(session, timeline, run, beh_dir, info, label, daysback)
    modality = "video" if kind == "videoframes" else "audio"
    desc = stream_desc(session, info)
    node = "audio/file" if kind == "audioblocks" else "camera/file"
    fname = (desc.findtext(node) or "").strip() if desc is not None else ""
    src = session.folder / Path(fname).name if fname else None
    if src is None or not src.is_file():
        raise _Missing(_missing_reason(info, desc, fname))
    label = _unique(media_label(src.name), used[modality], modality)
    copy = _copy_mic if kind == "audioblocks" else _copy_camera
    return lambda: copy(session, timeline, run, beh_dir, info, src, label, daysback)


class _Missing(Exception):
    """A media stream that gives no file (the message is the reason)."""


def _missing_reason(info: StreamInfo, desc: Any, fname: str) -> str:
    simulated = desc is not None and desc.find("avlab_sim") is not None
    if not fname:
        if simulated and info.type.lower() == "videoframes":
            return _SIM_CAMERA
        return "its LSL metadata names no media file"
    if info.n_samples == 0:
        return f"{Path(fname).name} was not recorded (the stream has no samples)"
    return f"{Path(fname).name} is not in the session folder"


# -- simulated audio: session.h5 → FLAC --------------------------------------------------
def _pads(session: Session, info: StreamInfo, fs: float) -> list[tuple[int, int]]:
    pads = []
    for row in session.gaps(info):
        k, n_pad = int(row[0]), int(round((row[2] - row[1]) * fs)) - 1
        if 0 < k < info.n_samples and n_pad > 0:
            pads.append((k, n_pad))
    return pads


def _audio_clock(
    session: Session, timeline: Timeline, info: StreamInfo, pads: list[tuple[int, int]]
) -> tuple[float, float]:
    """τ of sample 0 and the sample rate on the EEG axis, from one time stamp per second.

    Aligning every stamp of an hour at 48 kHz would take 1.4 GB; the stream is regular,
    so every ``fs``-th stamp gives the same clock fit and dejittered line.
    """
    fs = float(info.nominal_srate)
    step = max(1, int(round(fs / _STAMPS_PER_S)))
    with h5py.File(session.path, "r", swmr=session.swmr) as h5:
        ds = h5[fmt.STREAMS_GROUP][info.key][fmt.TIME_STAMPS]
        stamps = np.asarray(ds[0 : info.n_samples : step], dtype=np.float64)
    idx = np.arange(stamps.size, dtype=np.int64) * step
    breaks = sorted({int(np.searchsorted(idx, k)) for k, _ in pads} - {0, idx.size})
    gaps = np.array([[b, 0.0, 0.0, 0.0] for b in breaks]).reshape(-1, 4)
    regular = fs / step if idx.size >= 3 else 0.0
    aligned = align_stream(stamps, session.clock_offsets(info), regular, gaps,
                           clock_method=info.clock_method)  # fmt: skip
    tau = timeline.tau(aligned.times)
    if idx.size < 2:
        return float(tau[0]), fs
    shift = np.zeros(idx.size, dtype=np.int64)
    for k, n_pad in pads:
        shift[idx >= k] += n_pad
    slope, _ = np.polyfit((idx + shift).astype(np.float64), tau, 1)
    return float(tau[0]), float(1.0 / slope)  # idx[0] is sample 0


def _encode_audio(
    session: Session, timeline: Timeline, run: BidsRun, beh_dir: Path, info: StreamInfo,
    label: str, daysback: int | None,
) -> MediaFile:  # fmt: skip
    fs = float(info.nominal_srate)
    if fs <= 0 or info.n_samples == 0 or info.is_string:
        raise _Missing(f"{info.n_samples} samples at {fs:g} Hz cannot be written as audio")
    if fs != int(fs):
        raise _Missing(f"FLAC needs an integer sampling rate, the stream has {fs:g} Hz")
    pads = _pads(session, info, fs)
    path = beh_dir / f"{run.stem()}_recording-{label}_audio.flac"
    beh_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    clipped, n_written = 0, 0
    pad_at = dict(pads)
    # FLAC holds [-1, 1]: a stream that goes beyond (the simulated room can) is scaled
    # down as a whole, never clipped; the sidecar gives the factor to undo it.
    peak = 0.0
    for _, block in session.iter_blocks(info, int(_AUDIO_BLOCK_S * fs)):
        finite = block[np.isfinite(block)]
        if finite.size:
            peak = max(peak, float(np.abs(finite).max()))
    gain = 1.0 if peak <= 1.0 else 0.999 / peak
    try:
        with sf.SoundFile(tmp, "w", samplerate=int(fs), channels=info.channel_count,
                          subtype="PCM_24", format="FLAC") as out:  # fmt: skip
            for first, block in session.iter_blocks(info, int(_AUDIO_BLOCK_S * fs)):
                x = np.nan_to_num(block.astype(np.float64)) * gain
                over = np.abs(x) > 1.0
                clipped += int(over.sum())
                np.clip(x, -1.0, 1.0, out=x)
                cuts = sorted(k - first for k in pad_at if first <= k < first + x.shape[0])
                prev = 0
                for c in cuts:
                    out.write(x[prev:c])
                    out.write(np.zeros((pad_at[first + c], x.shape[1])))
                    prev = c
                out.write(x[prev:])
                n_written += x.shape[0]
        os.replace(tmp, path)
    except (OSError, sf.LibsndfileError) as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {path}: {exc}.",
            hint="Check that the BIDS root is writable and the disk has space.",
        ) from exc
    start, rate = _audio_clock(session, timeline, info, pads)
    n_total = n_written + sum(n for _, n in pads)
    labels = list(info.channel_labels) or [f"ch{i + 1}" for i in range(info.channel_count)]
    side: dict[str, Any] = {
        "TaskName": run.task,
        "Description": (
            f"Audio stream {info.name!r} as recorded by avlab (float samples in session.h5), "
            "encoded as 24-bit FLAC"
            + (f"; {len(pads)} recording gap(s) filled with silence" if pads else "")
            + "."
        ),
        "SamplingFrequency": fs,
        "SamplingFrequencyEffective": round(rate, 6),
        "AudioSampleRate": int(fs),
        "AudioChannelCount": info.channel_count,
        "AudioChannelLabels": labels,
        "AudioBitDepth": 24,
        "AudioCodec": "flac",
        "RecordingDuration": round(n_total / fs, 6),
        "StartTime": round(start, 6),
        "ClippedSampleCount": clipped,
        "AmplitudeScale": gain,
    }
    if gain != 1.0:
        side["Description"] += (
            f" The recording peaks at {peak:.3f} (full scale 1.0), so every sample was "
            f"multiplied by AmplitudeScale = {gain:.6g}; divide by it to get the recorded values."
        )
        logger.info("audio stream %r peaks at %.3f: scaled by %.4g", info.name, peak, gain)
    if clipped:
        side["Description"] += f" {clipped} sample values outside [-1, 1] were clipped."
        logger.warning("audio stream %r: %d sample values clipped to [-1, 1]", info.name, clipped)
    side_path = path.with_suffix(".json")
    write_json(side_path, side)
    start = side["StartTime"]
    return MediaFile(path, "audio", label, _acq(timeline, start, daysback), start, (side_path,))


# -- real recordings: copy ------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and _same(src, dst):
        return  # unchanged: keep the file and its modification time
    with staged(dst, source=src) as tmp:
        shutil.copyfile(src, tmp)


def _same(a: Path, b: Path, chunk: int = 1 << 20) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def _copy_mic(
    session: Session, timeline: Timeline, run: BidsRun, beh_dir: Path, info: StreamInfo,
    src: Path, label: str, daysback: int | None,
) -> MediaFile:  # fmt: skip
    try:
        snd = sf.info(str(src))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise _Missing(f"{src.name} cannot be read as audio ({exc})") from exc
    blocks = session.read(info)
    if blocks.n_samples == 0:
        raise _Missing(f"{src.name} has no block times (the stream has no samples)")
    first = blocks.data[:, 0].astype(np.float64)
    tau = timeline.tau(blocks.times)
    rate = float(snd.samplerate)
    if first.size >= 2 and np.ptp(first) > 0:
        slope, _ = np.polyfit(first, tau, 1)  # block stamps against sample index: the rate
        rate = 1.0 / slope
    # sample 0 from the blocks of the first 30 s (their stamps jitter; the median of their
    # extrapolations to sample 0 does not, and the clock is linear over 30 s)
    early = first < first[0] + _START_FIT_S * rate
    start = float(np.median(tau[early] - first[early] / rate))
    path = beh_dir / f"{run.stem()}_recording-{label}_audio{src.suffix.lower()}"
    _copy(src, path)
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "PCM_S8": 8, "PCM_U8": 8}.get(snd.subtype)
    side: dict[str, Any] = {
        "TaskName": run.task,
        "Description": f"Microphone recording {src.name!r} of the session, copied unchanged.",
        "SamplingFrequency": float(snd.samplerate),
        "SamplingFrequencyEffective": round(float(rate), 6),
        "AudioSampleRate": int(snd.samplerate),
        "AudioChannelCount": int(snd.channels),
        **({"AudioBitDepth": bits} if bits else {}),
        "AudioCodec": str(snd.format).lower(),
        "RecordingDuration": round(snd.frames / snd.samplerate, 6),
        "StartTime": round(float(start), 6),
    }
    side_path = path.with_suffix(".json")
    write_json(side_path, side)
    start = side["StartTime"]
    return MediaFile(path, "audio", label, _acq(timeline, start, daysback), start, (side_path,))


def _video_props(src: Path) -> dict[str, Any]:
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is a core dependency
        return {}
    cap = cv2.VideoCapture(str(src))
    try:
        if not cap.isOpened():
            return {}
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
        return {
            "codec": _CODECS.get(fourcc.lower(), fourcc.strip().lower()),
            "fps": float(cap.get(cv2.CAP_PROP_FPS)),
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()


def _copy_camera(
    session: Session, timeline: Timeline, run: BidsRun, beh_dir: Path, info: StreamInfo,
    src: Path, label: str, daysback: int | None,
) -> MediaFile:  # fmt: skip
    frames = session.read(info)
    if frames.n_samples == 0:
        raise _Missing(f"{src.name} has no frame times (the stream has no samples)")
    tau = timeline.tau(frames.times)
    path = beh_dir / f"{run.stem()}_recording-{label}_video{src.suffix.lower()}"
    _copy(src, path)
    times = path.with_name(path.name.replace(f"_video{path.suffix}", "_video_frametimes.tsv.gz"))
    block = np.column_stack([frames.data[:, 0].astype(np.float64), tau])
    write_tsv_gz(times, [block], ["%d", "%.6f"])
    desc = stream_desc(session, info)
    props = _video_props(src)
    fps = props.get("fps") or float(info.nominal_srate) or math.nan
    n_file = props.get("frames") or frames.n_samples

    def dim(key: str) -> int | None:
        text = desc.findtext(f"camera/{key}") if desc is not None else None
        return props.get(key) or (int(text) if text and text.isdigit() else None)

    side: dict[str, Any] = {
        "TaskName": run.task,
        "Description": (
            f"Camera recording {src.name!r} of the session, copied unchanged. Frame k of the "
            "file is row k of the frame-times file (frame index, timestamp in s on the EEG "
            "recording's time line)."
        ),
        "RecordingDuration": round(n_file / fps, 6) if math.isfinite(fps) and fps > 0 else None,
        "VideoCodec": props.get("codec"),
        "FrameRate": round(fps, 6) if math.isfinite(fps) else None,
        "VideoFrameCount": n_file,
        "Width": dim("width"),
        "Height": dim("height"),
        "StartTime": round(float(tau[0]), 6),
        "FrameTimesFile": times.name,
        "FrameTimesColumns": ["frame", "timestamp"],
    }
    side = {k: v for k, v in side.items() if v is not None}
    side_path = path.with_suffix(".json")
    write_json(side_path, side)
    start = side["StartTime"]
    return MediaFile(
        path, "video", label, _acq(timeline, start, daysback), start, (side_path, times)
    )


# -- .bidsignore ---------------------------------------------------------------------------
def update_bidsignore(root: Path) -> None:
    """Create or extend ``<root>/.bidsignore`` with :data:`BIDSIGNORE_PATTERNS`.

    Lines already there (the user's) are kept in order; missing avlab lines are appended
    once, so calling it again changes nothing (not even the modification time).
    """
    path = root / ".bidsignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = text.splitlines()
    have = {ln.strip() for ln in lines}
    missing = [p for p in BIDSIGNORE_PATTERNS if p not in have]
    if not missing:
        return
    if _BIDSIGNORE_HEADER not in have:
        missing.insert(0, _BIDSIGNORE_HEADER)
    atomic_write_bytes(path, ("\n".join([*lines, *missing]) + "\n").encode("utf-8"))
