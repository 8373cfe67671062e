"""What ``avlab separate run`` does with each kind of input.

- **Audio file** (WAV/FLAC): every separated talker is written as its own WAV
  (``<stem>_talker1.wav``, ``<stem>_talker2.wav``) at the input rate, with a
  ``summary.json`` (duration, real-time factor, reference-free SRMR per talker).
  A multi-channel file is mixed to mono first. Steering needs EEG or gaze, so
  ``--steer`` is refused here. With ``azimuth_deg`` and a hearing-aid array
  recording (4 channels, :func:`avlab.separate.scenes.hearing_aid_array`), the
  MVDR beamformer output steered to that direction is written too. With
  ``stream_ms`` (causal network only) the file is fed to
  :class:`avlab.separate.stream.StreamingSeparator` block by block, as a hearing
  aid would, and every block's compute time is recorded: the written talkers are
  the streamed output (its delay of one hop removed), and ``summary.json`` holds the
  latency, real-time factor and blocks over their deadline on this machine.
- **BIDS dataset** (``dataset_description.json``): every two-talker trial is
  separated and steered (:func:`avlab.separate.session.steer_bids`); tables,
  figures and ``report.html`` are written (:mod:`avlab.separate.report`).
- **Session folder** (``session.h5`` from ``avlab run`` / ``avlab record``): it
  is first converted to BIDS under ``<out>/bids`` (as ``avlab bids convert``
  would), then treated as a dataset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import BaseModel

from avlab._logging import logger
from avlab.errors import OutputError
from avlab.separate.inference import SeparateError, Separator
from avlab.separate.session import SteerOptions, SteerResult, steer_bids

__all__ = ["RunOutcome", "StreamSummary", "input_kind", "run_separation"]

_AUDIO = (".wav", ".flac")


class StreamSummary(BaseModel):
    """How a file streamed through the causal network (``--stream-ms``).

    The fields of :class:`avlab.separate.stream.StreamStats` that ``summary.json``
    keeps, under the names it has used since ``--stream-ms`` was added.

    Attributes
    ----------
    block_ms, latency_ms : float
        Block length; encoder window + block, ms (compute excluded).
    rtf : float
        Compute time of all blocks / audio duration.
    p99_ms, max_ms : float
        99th percentile and maximum compute time of one block, ms.
    deadline_misses, n_blocks : int
        Blocks whose compute took longer than the block; blocks.
    engine : str
    """

    block_ms: float
    latency_ms: float
    rtf: float
    p99_ms: float
    max_ms: float
    deadline_misses: int
    n_blocks: int
    engine: str


class RunOutcome(BaseModel):
    """What ``avlab separate run`` wrote."""

    kind: str
    out: Path
    files: list[Path]
    report_html: Path | None = None
    rtf: float | None = None
    stream: StreamSummary | None = None
    result: SteerResult | None = None


def input_kind(path: Path) -> str:
    """``"audio"``, ``"bids"`` or ``"session"``; :class:`SeparateError` otherwise."""
    if path.is_file() and path.suffix.lower() in _AUDIO:
        return "audio"
    if path.is_dir() and (path / "dataset_description.json").is_file():
        return "bids"
    if path.is_dir() and (path / "session.h5").is_file():
        return "session"
    if not path.exists():
        raise SeparateError(
            f"{path} does not exist.", "give a WAV/FLAC file, a BIDS dataset or a session folder."
        )
    raise SeparateError(
        f"{path} is neither a WAV/FLAC file, a BIDS dataset (dataset_description.json) nor a "
        "session folder (session.h5).",
        "pass one of those; convert other audio to WAV first (e.g. with sox or ffmpeg).",
    )


def _stream_talkers(
    sep: Separator, mono: np.ndarray, fs: int, block_ms: float
) -> tuple[np.ndarray, StreamSummary]:
    """Separate ``mono`` block by block; talkers (n_src, n) at ``fs`` and the timing."""
    from avlab.separate._audio import resample
    from avlab.separate.onnx_step import onnx_available
    from avlab.separate.stream import StreamingSeparator, block_samples, stream_timed

    block = block_samples(sep.config, block_ms, "--stream-ms")
    engine = "onnx" if onnx_available() else "fused"
    if engine == "fused":
        logger.warning("onnxruntime is not installed: streaming with the slower PyTorch engine")
    stream = StreamingSeparator(sep.net, sep.config, block, engine=engine)
    x = resample(mono, fs, sep.srate).astype(np.float32)
    n = x.size
    x = np.concatenate((x, np.zeros(-n % block, np.float32))).reshape(-1, block)
    blocks, st = stream_timed(stream, x)
    y = np.concatenate([*blocks, stream.flush()], axis=1)[:, stream.delay : stream.delay + n]
    talkers = np.zeros((y.shape[0], mono.size))
    for k, t in enumerate(y):
        up = resample(t.astype(np.float64), sep.srate, fs)[: mono.size]
        talkers[k, : up.size] = up
    summary = StreamSummary(
        block_ms=block_ms,
        latency_ms=st.total_latency_ms,
        **st.model_dump(
            include={"rtf", "p99_ms", "max_ms", "deadline_misses", "n_blocks", "engine"}
        ),
    )
    return talkers, summary


def _separate_file(
    path: Path,
    out: Path,
    sep: Separator,
    azimuth_deg: float | None,
    stream_ms: float | None = None,
) -> RunOutcome:
    from avlab.separate.metrics import srmr

    try:
        audio, fs = sf.read(path, dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise SeparateError(
            f"cannot read {path}: {exc}.", "check that the file is a complete WAV or FLAC."
        ) from exc
    if audio.shape[0] == 0:
        raise SeparateError(f"{path} has no samples.", "record or export the audio again.")
    mono = audio.mean(axis=1)
    streamed = None
    if stream_ms is not None:
        talkers, streamed = _stream_talkers(sep, mono, int(fs), stream_ms)
        rtf = streamed.rtf
    else:
        t0 = time.perf_counter()
        talkers = sep.separate(mono, int(fs))
        rtf = (time.perf_counter() - t0) / (mono.size / fs)
    files = []
    for k, y in enumerate(talkers, start=1):
        f = out / f"{path.stem}_talker{k}.wav"
        peak = max(1.0, float(np.abs(y).max()))
        sf.write(f, y / peak, int(fs), subtype="FLOAT")
        files.append(f)
    summary = {
        "input": str(path),
        "srate": int(fs),
        "channels": int(audio.shape[1]),
        "duration_s": mono.size / fs,
        "network": sep.mode,
        "rtf": rtf,
        "srmr_mixture": srmr(mono, int(fs)),
        "srmr_talkers": [srmr(y, int(fs)) for y in talkers],
    }
    if streamed is not None:
        summary["stream"] = streamed.model_dump()
    if azimuth_deg is not None:
        from avlab.separate.beamform import mvdr
        from avlab.separate.scenes import hearing_aid_array

        if audio.shape[1] != 4:
            raise SeparateError(
                f"--azimuth needs the 4 channels of the hearing-aid array; {path} has "
                f"{audio.shape[1]}.",
                "record with the array, or leave --azimuth out.",
            )
        y = mvdr(audio.T, int(fs), hearing_aid_array(), azimuth_deg)
        f = out / f"{path.stem}_mvdr.wav"
        sf.write(f, y / max(1.0, float(np.abs(y).max())), int(fs), subtype="FLOAT")
        files.append(f)
        summary["mvdr_azimuth_deg"] = azimuth_deg
    f = out / "summary.json"
    f.write_text(json.dumps(summary, indent=1))
    files.append(f)
    return RunOutcome(kind="audio", out=out, files=files, rtf=rtf, stream=streamed)


def run_separation(
    source: Path,
    out: Path,
    *,
    mode: str = "noncausal",
    steer: list[str] | None = None,
    options: SteerOptions | None = None,
    model_dir: Path | None = None,
    azimuth_deg: float | None = None,
    stream_ms: float | None = None,
    screen_size_m: tuple[float, float] | None = None,
    screen_distance_m: float | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> RunOutcome:
    """Separate (and, for datasets, steer) ``source`` into ``out``.

    Parameters
    ----------
    source : Path
        WAV/FLAC file, BIDS dataset or session folder.
    out : Path
        Output folder (created; must be empty unless ``overwrite``).
    mode : {"causal", "noncausal"}
        Which shipped network.
    steer : list of str or None
        ``eeg``, ``gaze``, ``truth`` (datasets only; default all three).
    options : SteerOptions or None
        Dataset settings (windows, subjects, ...); ``steer`` overrides its field.
    model_dir : Path or None
        Folder with other weights (``avlab separate train``).
    azimuth_deg : float or None
        Audio files from the hearing-aid array only: also write the MVDR output
        steered to this direction (degrees, positive left).
    stream_ms : float or None
        Audio files and the causal network only: separate block by block in
        blocks of this many ms (a whole number of hops: 2 ms for the shipped
        network) and time each block.
    screen_size_m, screen_distance_m : optional
        Session folders only: the screen geometry for the conversion (without it
        ``lab.json`` must hold it, or no screen gaze is written and gaze steering
        is skipped).
    overwrite : bool
    progress : callable or None

    Returns
    -------
    RunOutcome
    """
    kind = input_kind(source)
    if mode not in ("causal", "noncausal"):
        raise SeparateError(f"unknown --mode {mode!r}.", "use causal or noncausal.")
    if kind == "audio" and steer:
        raise SeparateError(
            f"--steer {','.join(steer)} needs EEG or gaze, and {source} is an audio file.",
            "leave --steer out to get every separated talker, or give the BIDS dataset or "
            "session folder the audio belongs to.",
        )
    if stream_ms is not None and kind != "audio":
        what = "a BIDS dataset" if kind == "bids" else "a session folder"
        raise SeparateError(
            f"--stream-ms streams an audio file; {source} is {what}.",
            "give a WAV/FLAC file, or leave --stream-ms out.",
        )
    if stream_ms is not None and mode != "causal":
        raise SeparateError(
            f"--stream-ms needs the causal network; --mode is {mode}.", "add --mode causal."
        )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"output folder {out} is not empty.", "choose a new --out folder or pass --overwrite."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc}.", "choose a writable --out.") from exc
    sep = Separator(mode, model_dir)  # type: ignore[arg-type]
    if kind == "audio":
        return _separate_file(source, out, sep, azimuth_deg, stream_ms)
    root = source
    if kind == "session":
        from avlab.bids.convert import ConvertOptions, convert_sessions

        root = out / "bids"
        logger.info("converting session %s to BIDS in %s", source, root)
        convert_sessions([source], ConvertOptions(bids_root=root, screen_size_m=screen_size_m,
                         screen_distance_m=screen_distance_m), progress=False)  # fmt: skip
    opts = (options or SteerOptions()).model_copy()
    if steer:
        opts.steer = list(steer)
    from avlab.separate.report import write_report

    result = steer_bids(root, out, sep.separate, opts, mode=mode, progress=progress)
    report = write_report(result, out, source=str(source))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return RunOutcome(kind=kind, out=out, files=files, report_html=report, result=result)
