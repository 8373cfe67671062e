"""Microphones through sounddevice: samples to FLAC, block times to LSL.

A :class:`MicrophoneRecorder` opens a ``sounddevice.InputStream``. Its callback
copies each block and puts it on a queue with the block's time; a writer
thread appends the blocks to a FLAC file (``soundfile``, written as it comes
and flushed every second, so a crash keeps what was written: FLAC frames are
self-synchronizing and carry their own sample numbers, decoders read a file
whose header was never finalized up to its last whole frame) and pushes one
LSL sample per block to a stream of type ``AudioBlocks`` with two channels,
``first_sample_index`` and ``n_frames`` (double64, exact up to 2**53).

Block time: the stamp of a block is the LSL time of its **first sample** at
the ADC. With ``stamping="adc"`` (default) it comes from PortAudio: in the
callback, ``time.inputBufferAdcTime`` (when the first sample was captured)
and ``time.currentTime`` (now) are on the stream's clock, and the callback
reads ``pylsl.local_clock()`` at once, so

    t_lsl(first sample) = local_clock() - (currentTime - inputBufferAdcTime)

which needs no relation between PortAudio's clock and LSL's. Where the host
API reports no ADC time (0) or an impossible one (in the future, or more than
1 s old), the last good delay is reused (the stream's input latency before
the first) and the block is counted in ``MicrophoneResult.bad_adc_times``.

With ``stamping="arrival"``:

    t_lsl(first sample) = local_clock() - input_latency - n_frames / srate

(``input_latency`` is PortAudio's ``stream.latency``, constant); its error is
the callback's scheduling jitter plus whatever of the latency is not reported.

Through ALSA's ``pulse`` plugin (PortAudio 19.6, a PulseAudio monitor source)
the reported ADC delay is not trustworthy: it changed by up to 0.6 s within a
second when another client started playing into the sink (the sink's latency
being renegotiated), while the samples kept arriving at the sample rate. The
tests therefore check the block times with ``stamping="arrival"`` there, and
the ADC path only on a steady stream. For a real audio interface (ALSA ``hw``)
the ADC time is the better stamp; check ``bad_adc_times`` and the block-stamp
residuals of a test recording. Either way, a fit of stamp against
``first_sample_index`` (the sample clock is regular) removes the jitter, as
the session's sync does for regular streams.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.devices.lsl import AudioDevice, portaudio_devices
from avlab.errors import AvlabError, OutputError

if TYPE_CHECKING:
    import pylsl

__all__ = [
    "MicrophoneError",
    "MicrophoneLostError",
    "MicrophoneRecorder",
    "MicrophoneResult",
    "list_audio_devices",
    "read_flac",
]

_LOST_AFTER_S = 2.0  # no callback this long: the device is gone
_FLUSH_S = 1.0
_MAX_DELAY_S = 1.0  # a reported ADC time older than this (or in the future) is wrong


class MicrophoneError(AvlabError, RuntimeError):
    """An audio input device cannot be opened or read."""

    exit_code = 11


class MicrophoneLostError(MicrophoneError):
    """An audio device stopped delivering blocks; ``result`` has what was recorded."""

    def __init__(
        self, message: str, hint: str = "", result: MicrophoneResult | None = None
    ) -> None:
        super().__init__(message, hint)
        self.result = result


class MicrophoneResult(BaseModel):
    """What a microphone recording produced.

    Attributes
    ----------
    n_frames : int
        Sample frames written to the FLAC (per channel).
    n_blocks : int
        Blocks (= LSL samples of the block-time stream).
    overflows : int
        Callbacks that reported an input overflow (samples lost by the driver).
    bad_adc_times : int
        Blocks whose ADC time from PortAudio was missing or impossible (their
        stamp reuses the last good delay; see the module docstring).
    path : Path
        The FLAC file.
    srate : float
        Sampling rate, Hz.
    channels : int
        Channels recorded.
    duration_s : float
        ``n_frames / srate``, s.
    """

    model_config = ConfigDict(extra="forbid")

    n_frames: int
    n_blocks: int
    overflows: int
    bad_adc_times: int = 0
    path: Path
    srate: float
    channels: int
    duration_s: float


def list_audio_devices(*, inputs_only: bool = True) -> list[AudioDevice]:
    """Audio devices PortAudio sees (through ``sounddevice``).

    Parameters
    ----------
    inputs_only : bool
        Keep only devices with input channels.

    Returns
    -------
    devices : list of AudioDevice
        ``index`` is the sounddevice/PortAudio index to pass as ``device``.

    Raises
    ------
    MicrophoneError
        PortAudio (``libportaudio2``) cannot be loaded.
    """
    try:
        devices = portaudio_devices()
    except (ImportError, OSError) as exc:
        raise MicrophoneError(
            f"cannot load PortAudio through sounddevice: {exc}.",
            "Install libportaudio2 (Debian) and the sounddevice package.",
        ) from exc
    return [d for d in devices if d.max_input_channels > 0 or not inputs_only]


def read_flac(path: Path) -> tuple[np.ndarray, int]:
    """Read a FLAC written by :class:`MicrophoneRecorder`, finished or not.

    A recording cut short (crash, kill -9) has no total length in its header
    (libsndfile then reports an absurd frame count); this reads block by block
    up to the last whole FLAC frame.

    Parameters
    ----------
    path : Path
        The FLAC file.

    Returns
    -------
    data : ndarray, shape (n_frames, n_channels), float64
        Samples in [-1, 1].
    srate : int
        Sampling rate, Hz.
    """
    import soundfile as sf

    parts = []
    with sf.SoundFile(path) as f:
        srate, n_ch = int(f.samplerate), int(f.channels)
        while True:
            buf = np.full((65536, n_ch), np.nan)
            try:
                part = f.read(out=buf)
            except sf.LibsndfileError:
                # past the end of an unfinished file: libsndfile decoded the frames into
                # ``buf`` but fails to seek; keep the rows it filled
                filled = ~np.isnan(buf).any(axis=1)
                n = len(filled) if filled.all() else int(np.argmin(filled))
                parts.append(buf[:n])
                logger.info("%s is unfinished; read %d frames", path, sum(map(len, parts)))
                break
            if not len(part):
                break
            parts.append(part.copy())
    data = np.concatenate(parts) if parts else np.zeros((0, n_ch))
    return data, srate


class MicrophoneRecorder:
    """Record an audio input to FLAC with per-block LSL times.

    Parameters
    ----------
    device : int, str or None
        PortAudio device index, a unique part of its name (``"pulse"``), or
        None for the default input.
    out_path : Path
        FLAC file to write.
    channels : int
        Input channels to record.
    srate : float
        Sampling rate, Hz.
    stream_name : str
        Name of the LSL block-time stream.
    blocksize : int
        Frames per callback (0: the host API's choice).
    subtype : str
        FLAC sample format (``"PCM_16"``, ``"PCM_24"``).
    stamping : {"adc", "arrival"}
        Block stamps from PortAudio's ADC time (default) or from the
        callback's arrival (see the module docstring).
    source_id : str, optional
        LSL source_id (default derived from the stream name and device).
    overwrite : bool
        Replace an existing ``out_path``.
    """

    def __init__(
        self,
        device: int | str | None,
        out_path: Path,
        *,
        channels: int,
        srate: float,
        stream_name: str,
        blocksize: int = 0,
        subtype: str = "PCM_24",
        stamping: Literal["adc", "arrival"] = "adc",
        source_id: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels={channels} must be at least 1")
        if srate <= 0:
            raise ValueError(f"srate={srate} must be positive")
        self.device = device
        self.out_path = Path(out_path)
        self.channels = channels
        self.srate = float(srate)
        self.stream_name = stream_name
        self.blocksize = blocksize
        self.subtype = subtype
        if stamping not in ("adc", "arrival"):
            raise ValueError(f"stamping={stamping!r} must be 'adc' or 'arrival'")
        self.stamping = stamping
        digest = hashlib.sha1(f"{stream_name}|{device}".encode()).hexdigest()[:12]
        self.source_id = source_id or f"avlab-mic-{digest}"
        self.overwrite = overwrite
        self._queue: queue.Queue[tuple[np.ndarray, float, bool] | None] = queue.Queue()
        self._stream: Any = None
        self._file: Any = None
        self._outlet: pylsl.StreamOutlet | None = None
        self._thread: threading.Thread | None = None
        self._last_callback = 0.0
        self._delay = self._latency = 0.0
        self.bad_adc_times = 0
        self.n_frames = 0
        self.n_blocks = 0
        self.overflows = 0
        self.error: str | None = None

    @property
    def name(self) -> str:
        """Human-readable device name, for messages."""
        return "the default audio input" if self.device is None else f"audio input {self.device!r}"

    # -- callback (PortAudio's thread: copy and queue only) --------------------
    def _callback(self, indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        import pylsl

        now = pylsl.local_clock()
        if self.stamping == "arrival":
            t_first = now - self._latency - frames / self.srate
        else:
            delay = float(t.currentTime) - float(t.inputBufferAdcTime)
            if float(t.inputBufferAdcTime) > 0.0 and 0.0 <= delay <= _MAX_DELAY_S:
                self._delay = delay
            else:  # no or impossible ADC time: keep the last good delay
                self.bad_adc_times += 1
            t_first = now - self._delay
        self._last_callback = time.monotonic()
        self._queue.put((indata.copy(), t_first, bool(status.input_overflow)))

    # -- writer thread -------------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                item = None
                if (
                    self._stream is not None
                    and self.n_blocks
                    and (time.monotonic() - self._last_callback > _LOST_AFTER_S)
                ):
                    self.error = (
                        f"{self.name} delivered no audio for {_LOST_AFTER_S:.1f} s "
                        f"after {self.n_frames} frames."
                    )
                    logger.error("%s", self.error)
                    return
                if self._stream is None:  # stopped and drained
                    return
                continue
            if item is None:
                return
            block, t_first, overflow = item
            try:
                self._file.write(block)
            except Exception as exc:  # noqa: BLE001 - libsndfile errors are RuntimeError
                self.error = f"cannot write {self.out_path}: {exc}."
                logger.error("%s", self.error)
                return
            assert self._outlet is not None
            self._outlet.push_sample([float(self.n_frames), float(len(block))], t_first)
            if overflow:
                self.overflows += 1
                logger.warning(
                    "%s: input overflow before sample %d (%d so far)",
                    self.name, self.n_frames, self.overflows,
                )  # fmt: skip
            self.n_frames += len(block)
            self.n_blocks += 1
            if time.monotonic() - last_flush > _FLUSH_S:
                self._file.flush()
                last_flush = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------
    def _make_outlet(self) -> pylsl.StreamOutlet:
        import pylsl

        info = pylsl.StreamInfo(self.stream_name, "AudioBlocks", 2, 0.0, "double64", self.source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "avlab")
        chans = desc.append_child("channels")
        for label, unit in (("first_sample_index", "samples"), ("n_frames", "samples")):
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", "AudioBlock")
        audio = desc.append_child("audio")
        audio.append_child_value("file", self.out_path.name)
        audio.append_child_value("srate", f"{self.srate:g}")
        audio.append_child_value("channels", str(self.channels))
        audio.append_child_value("device", str(self.device))
        audio.append_child_value("stamp", f"first_sample_{self.stamping}_time")
        return pylsl.StreamOutlet(info, chunk_size=1, max_buffered=360)

    def start(self, *, wait_for_consumer_s: float = 0.0) -> MicrophoneRecorder:
        """Open the device, the FLAC file and the LSL outlet; start recording.

        Parameters
        ----------
        wait_for_consumer_s : float
            Wait up to this long (s) for an inlet on the block-time stream
            before opening the device, so the recorder sees block 0.

        Returns
        -------
        self : MicrophoneRecorder

        Raises
        ------
        MicrophoneError
            The device does not exist or refuses the channels / rate.
        OutputError
            The FLAC exists (without ``overwrite``) or cannot be written.
        """
        import sounddevice as sd
        import soundfile as sf

        if self.out_path.exists() and not self.overwrite:
            raise OutputError(
                f'"{self.out_path}" already exists.', "Pass overwrite=True or another path."
            )
        try:
            stream = sd.InputStream(
                device=self.device,
                channels=self.channels,
                samplerate=self.srate,
                blocksize=self.blocksize,
                dtype="float32",
                callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            names = ", ".join(f"{d.index}: {d.name}" for d in list_audio_devices()) or "none"
            raise MicrophoneError(
                f"cannot open {self.name} with {self.channels} channels at "
                f"{self.srate:g} Hz: {exc}.",
                f"Pick an input device that supports them (inputs: {names}).",
            ) from exc
        try:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                self.out_path, "w", samplerate=int(round(self.srate)),
                channels=self.channels, format="FLAC", subtype=self.subtype,
            )  # fmt: skip
        except (OSError, RuntimeError) as exc:
            stream.close()
            raise OutputError(
                f'cannot write "{self.out_path}": {exc}.', "Check that the folder is writable."
            ) from exc
        self._latency = float(stream.latency)
        self._delay = self._latency  # until the first valid ADC time
        self._outlet = self._make_outlet()
        if wait_for_consumer_s > 0 and not self._outlet.wait_for_consumers(wait_for_consumer_s):
            logger.warning(
                "%s: no consumer of %s yet; recording anyway", self.name, self.stream_name
            )
        self._stream = stream
        self._thread = threading.Thread(
            target=self._run, name=f"avlab-mic-{self.stream_name}", daemon=True
        )
        self._thread.start()
        self._last_callback = time.monotonic()
        stream.start()
        logger.info(
            "recording %s (%d ch, %g Hz) to %s", self.name, self.channels, self.srate, self.out_path
        )
        return self

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive (False after a lost device)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> MicrophoneResult:
        """Stop the device, write the remaining blocks, close the FLAC.

        Returns
        -------
        result : MicrophoneResult

        Raises
        ------
        MicrophoneLostError
            The device stopped delivering audio during the recording (the
            FLAC keeps what was recorded; ``exc.result`` has it).
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # noqa: BLE001 - PortAudio errors on a vanished device
                logger.warning("%s: closing the stream failed: %s", self.name, exc)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10.0)
        if self._file is not None:
            self._file.close()
            logger.info("wrote %s (%d frames)", self.out_path, self.n_frames)
            self._file = None
        self._outlet = None
        result = MicrophoneResult(
            n_frames=self.n_frames,
            n_blocks=self.n_blocks,
            overflows=self.overflows,
            bad_adc_times=self.bad_adc_times,
            path=self.out_path,
            srate=self.srate,
            channels=self.channels,
            duration_s=self.n_frames / self.srate,
        )
        if self.error is not None:
            raise MicrophoneLostError(
                self.error,
                "Check the audio interface's cable and power; the audio up to the loss is kept.",
                result=result,
            )
        return result

    def __enter__(self) -> MicrophoneRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self.stop()
