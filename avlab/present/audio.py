"""Trial audio: spatialized talkers and noise in one stereo buffer, played locked to a flip.

**Mixing.** Every stimulus was normalized to the same loudness (BS.1770) when it
was built, so ``level_db`` is a gain re that loudness and ``snr_db`` sets the
noise to ``-snr_db`` dB re one talker. Talkers are placed at ``azimuth_deg``
with an interaural time difference (Woodworth's spherical head, radius
8.75 cm) and a broadband level difference (up to 10 dB at 90 degrees);
noise is diotic. A mix that would clip is scaled down as a whole (logged).

**Playback backends** (details and measurements: docs/presenter.md).

- ``sounddevice`` (PortAudio through ALSA; on Linux desktops usually ALSA's
  ``pulse`` plugin): a callback stream that outputs silence until the scheduled
  start sample, so the onset is placed to the sample at a requested time on the
  stream's DAC clock. The onset time reported is the DAC time of the buffer
  holding the first sample plus its offset in that buffer (the buffer's DAC
  time: the median over recent callbacks of ``outputBufferDacTime`` minus the
  frames played before it, plus those frames; one callback's reading jitters by
  milliseconds under load, the sample clock does not), mapped to
  LSL time by pairing ``time.currentTime`` with ``pylsl.local_clock`` in the
  callback. Where PortAudio reports no DAC time (0), ``currentTime`` plus the
  stream's output latency is used. Underruns are counted; one near an onset
  marks that onset uncertain.
- ``ptb`` (Psychtoolbox's PsychPortAudio): opened with ``channels=2``
  explicitly, which avoids PsychoPy's "Number of columns ... doesn't match"
  with ALSA's 32-channel ``pulse`` device; ``start(when=...)`` schedules on the
  GetSecs clock (CLOCK_REALTIME on Linux), mapped to LSL time. On the
  PulseAudio plugin its engine opens but never plays (0 samples out; latency
  class 1 even hangs at open), so it is refused there with a clear error.
- ``auto``: ``sounddevice`` when the output goes through PulseAudio (a
  PulseAudio server answers or the device is ``pulse``/``default``),
  ``ptb`` otherwise (a real ALSA hardware device).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from typing import Any

import numpy as np
import pylsl

from avlab._logging import logger
from avlab.errors import AvlabError

__all__ = ["AudioPlayer", "choose_backend", "open_player", "spatialize", "tone", "trial_mix"]

SRATE = 48000
_BLOCK = 480  # samples per callback (10 ms)
_HEAD_RADIUS_M = 0.0875
_SOUND_MPS = 343.0
_MAX_ILD_DB = 10.0


def spatialize(x: np.ndarray, azimuth_deg: float, srate: int = SRATE) -> np.ndarray:
    """Place a mono signal at an azimuth (negative left) with ITD and ILD.

    Parameters
    ----------
    x : ndarray, shape (n,)
    azimuth_deg : float
    srate : int
        Hz.

    Returns
    -------
    stereo : ndarray, shape (n, 2)
    """
    az = np.deg2rad(np.clip(azimuth_deg, -90.0, 90.0))
    itd = _HEAD_RADIUS_M / _SOUND_MPS * (abs(az) + np.sin(abs(az)))  # Woodworth, s
    shift = itd * srate
    n = x.size
    size = 1 << int(np.ceil(np.log2(n + int(np.ceil(shift)) + 2)))
    freqs = np.fft.rfftfreq(size, 1.0 / srate)
    spec = np.fft.rfft(x, size)
    delayed = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * itd), size)[:n]
    far_gain = 10 ** (-_MAX_ILD_DB * abs(np.sin(az)) / 20.0)
    near, far = x, delayed * far_gain
    left, right = (near, far) if az < 0 else (far, near)
    if az == 0:
        left = right = x
    return np.stack([left, right], axis=1)


def tone(freq_hz: float, dur_s: float, level: float = 0.1, srate: int = SRATE) -> np.ndarray:
    """Return a tone burst with 10 ms raised-cosine ramps, shape (n,)."""
    t = np.arange(int(dur_s * srate)) / srate
    env = np.minimum(1.0, np.minimum(t, dur_s - t) / 0.01)
    return level * np.sin(np.pi / 2 * env) ** 2 * np.sin(2 * np.pi * freq_hz * t)


def trial_mix(
    talkers: list[tuple[np.ndarray, float, float, float]],
    noise: tuple[np.ndarray, float] | None,
    duration_s: float | None,
    *,
    srate: int = SRATE,
) -> tuple[np.ndarray, float]:
    """Mix a trial's talkers (and noise) into one stereo buffer.

    Parameters
    ----------
    talkers : list of (audio, level_db, azimuth_deg, onset_s)
        Mono audio at ``srate`` and its placement.
    noise : (audio, snr_db) or None
        Noise audio (mono, long enough) and the SNR re one talker, dB.
    duration_s : float or None
        Length of the trial; None: the longest talker.
    srate : int
        Hz.

    Returns
    -------
    mix : ndarray, shape (n, 2), float32
    gain_db : float
        Protective gain applied to the whole mix (0 unless it would clip).
    """
    ends = [int(round(on * srate)) + a.size for a, _, _, on in talkers]
    n = int(round(duration_s * srate)) if duration_s else max(ends, default=0)
    mix = np.zeros((n, 2))
    for audio, level_db, az, onset in talkers:
        k = int(round(onset * srate))
        seg = audio[: max(0, n - k)] * 10 ** (level_db / 20.0)
        mix[k : k + seg.size] += spatialize(seg, az, srate)
    if noise is not None and n:
        audio, snr_db = noise
        reps = int(np.ceil(n / audio.size))
        seg = np.tile(audio, reps)[:n] * 10 ** (-snr_db / 20.0)
        ramp = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.02 * srate))
        mix += (seg * ramp)[:, None]
    peak = float(np.abs(mix).max()) if n else 0.0
    gain_db = 0.0
    if peak > 0.98:
        gain_db = 20 * np.log10(0.98 / peak)
        mix *= 0.98 / peak
        logger.info("trial mix scaled by %.1f dB to avoid clipping", gain_db)
    return mix.astype(np.float32), gain_db


def _pulse_reachable() -> bool:
    if os.environ.get("PULSE_SERVER"):
        return True
    pactl = shutil.which("pactl")
    if pactl is None:
        return False
    try:
        return subprocess.run([pactl, "info"], capture_output=True, timeout=3).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_backend(backend: str, device: str | None) -> str:
    """Resolve ``auto`` to ``sounddevice`` or ``ptb`` (see the module docstring)."""
    if backend != "auto":
        return backend
    if device is None or device.lower() in ("pulse", "default") or _pulse_reachable():
        return "sounddevice"
    return "ptb"


class AudioPlayer:
    """Common interface: play a stereo buffer at an LSL time, report the real onset."""

    backend = ""
    device_name = ""
    latency_s = 0.0
    underflows = 0
    onset_underflow = False  # an underrun near the last onset: its time is uncertain

    def play(self, buf: np.ndarray, when_lsl: float) -> None:
        """Schedule ``buf`` (n, 2) to start at LSL time ``when_lsl``."""
        raise NotImplementedError

    def onset_lsl(self, timeout_s: float = 2.0) -> float:
        """LSL time of the first sample of the last ``play`` (waits until known)."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Tell whether the last buffer is still playing."""
        raise NotImplementedError

    def stop_sound(self) -> None:
        """Stop the current sound at once (abort)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the output stream."""


class _SoundDevicePlayer(AudioPlayer):
    backend = "sounddevice"

    def __init__(self, device: str | None, buffer_s: float = 0.1) -> None:
        import sounddevice as sd

        dev: int | str | None = int(device) if device and device.isdigit() else device
        self._lock = threading.Lock()
        self._buf: np.ndarray | None = None
        self._pos = 0
        self._target_pa: float | None = None
        self._onset_pa: float | None = None
        self._offsets: list[float] = []
        self._calls: list[float] = []  # LSL times of recent callbacks (warm-up check)
        self._frames = 0  # frames handed to PortAudio so far
        self._anchors: list[float] = []  # DAC time of frame 0, one estimate per callback
        self.underflows = 0
        self._started = threading.Event()
        try:
            try:
                self.stream = self._open(sd, dev, buffer_s)
            except sd.PortAudioError:
                # PortAudio fixes its device list when it is initialized: a sound server that
                # started or restarted since (PulseAudio behind ALSA's "pulse") is not in it.
                # Initialize once more and retry before giving up.
                logger.info("audio output not found; re-initializing PortAudio and retrying")
                sd._terminate()
                sd._initialize()
                self.stream = self._open(sd, dev, buffer_s)
            self.stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio errors are untyped
            raise AvlabError(
                f"cannot open audio output {device or '(default)'} with sounddevice: {exc}.",
                "Check the sound card and --audio-device (`avlab devices` lists outputs).",
            ) from exc
        info = sd.query_devices(self.stream.device)
        self.device_name = str(info["name"])
        self.latency_s = float(self.stream.latency)
        self._warm_up()

    def _open(self, sd: Any, dev: int | str | None, buffer_s: float) -> Any:
        return sd.OutputStream(
            samplerate=SRATE, channels=2, dtype="float32", device=dev,
            blocksize=_BLOCK, latency=buffer_s, callback=self._callback,
        )  # fmt: skip

    def _warm_up(self, steady_s: float = 0.3, timeout_s: float = 6.0) -> None:
        """Wait until the callbacks flow steadily for ``steady_s``.

        ALSA's pulse plugin prefills the buffer, then stalls for about 2 s after
        the stream starts; a sound scheduled then would start late.
        """
        need = int(0.8 * steady_s * SRATE / _BLOCK)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            now = pylsl.local_clock()
            with self._lock:
                recent = sum(1 for t in self._calls if t > now - steady_s)
            if recent >= need:
                logger.info("audio output %r steady after %.2f s", self.device_name,
                            time.monotonic() - t0)  # fmt: skip
                return
            time.sleep(0.02)
        with self._lock:
            n = len(self._calls)
        if n == 0:
            raise AvlabError(
                f"audio output {self.device_name!r} opened but never asked for samples.",
                "Check the sound server (PulseAudio) or choose another --audio-device.",
            )
        logger.warning("audio output %r: callbacks irregular after %g s", self.device_name,
                       timeout_s)  # fmt: skip

    def _offset(self) -> float:
        with self._lock:
            return float(np.median(self._offsets[-50:]))

    def _callback(self, out: np.ndarray, frames: int, t: object, status: object) -> None:
        now_lsl = pylsl.local_clock()
        cur = float(t.currentTime)  # type: ignore[attr-defined]
        dac_raw = float(t.outputBufferDacTime) or cur + float(self.stream.latency)  # type: ignore[attr-defined]
        out.fill(0.0)
        with self._lock:
            self._offsets.append(now_lsl - cur)
            self._calls.append(now_lsl)
            if len(self._offsets) > 200:
                del self._offsets[:100]
                del self._calls[:100]
            if getattr(status, "output_underflow", False):
                self.underflows += 1
                self._anchors.clear()  # the device ran dry: frames and DAC time parted
                if self._onset_pa is not None and cur < self._onset_pa + 0.05:
                    self.onset_underflow = True  # the device ran dry around the onset
            # One callback's DAC time is noisy under load (the ALSA pulse plugin's delay is an
            # estimate); the sample clock is not: between underruns, frame n plays at
            # anchor + n / rate. The median anchor over recent callbacks places the onset.
            self._anchors.append(dac_raw - self._frames / SRATE)
            if len(self._anchors) > 100:
                del self._anchors[:50]
            dac = float(np.median(self._anchors[-50:])) + self._frames / SRATE
            self._frames += frames
            buf, target = self._buf, self._target_pa
            if buf is None or target is None:
                return
            if self._onset_pa is None:
                k = int(round((target - dac) * SRATE))
                if k >= frames:
                    return
                k = max(k, 0)
                self._onset_pa = dac + k / SRATE
                self._started.set()
            else:
                k = 0
            n = min(frames - k, buf.shape[0] - self._pos)
            if n > 0:
                out[k : k + n] = buf[self._pos : self._pos + n]
                self._pos += n
            if self._pos >= buf.shape[0]:
                self._buf = None

    def play(self, buf: np.ndarray, when_lsl: float) -> None:
        off = self._offset()
        with self._lock:
            self._started.clear()
            self._onset_pa = None
            self.onset_underflow = False
            self._pos = 0
            self._buf = np.ascontiguousarray(buf, dtype=np.float32)
            self._target_pa = when_lsl - off

    def onset_lsl(self, timeout_s: float = 2.0) -> float:
        if not self._started.wait(timeout_s):
            raise AvlabError(
                f"audio output {self.device_name!r} did not start the sound in {timeout_s:g} s.",
                "Check the sound server and the device.",
            )
        with self._lock:
            assert self._onset_pa is not None
            return self._onset_pa + float(np.median(self._offsets[-50:]))

    def busy(self) -> bool:
        with self._lock:
            return self._buf is not None

    def stop_sound(self) -> None:
        with self._lock:
            self._buf = None

    def close(self) -> None:
        try:
            self.stream.stop()
            self.stream.close()
        except Exception as exc:  # noqa: BLE001
            logger.debug("closing the audio stream: %s", exc)


class _PTBPlayer(AudioPlayer):
    backend = "ptb"

    def __init__(self, device: str | None) -> None:
        import psychtoolbox as ptb
        from psychtoolbox import audio

        from avlab.present.markers import ClockMap

        self._ptb = ptb
        if _pulse_reachable() and (device is None or device in ("pulse", "default")):
            raise AvlabError(
                "Psychtoolbox audio does not play through PulseAudio's ALSA plugin "
                "(its stream opens but outputs 0 samples).",
                "Use --audio-backend sounddevice (or auto), or stop PulseAudio and give "
                "an ALSA hardware device with --audio-device.",
            )
        dev_id = None
        for d in audio.get_devices():
            name = str(d.get("DeviceName", ""))
            if d.get("NrOutputChannels", 0) >= 2 and (
                device is None or device == str(int(d["DeviceIndex"])) or device in name
            ):
                dev_id, self.device_name = int(d["DeviceIndex"]), name
                break
        if dev_id is None:
            raise AvlabError(
                f"no stereo output {device or ''} for Psychtoolbox audio.",
                "Check --audio-device, or use --audio-backend sounddevice.",
            )
        self.stream = audio.Stream(device_id=dev_id, mode=1, latency_class=1, freq=SRATE,
                                   channels=2)  # fmt: skip
        self.clock = ClockMap(ptb.GetSecs)
        self._end = 0.0
        self._when = 0.0

    def play(self, buf: np.ndarray, when_lsl: float) -> None:
        self.stream.fill_buffer(np.asarray(buf, dtype=np.float64))
        self._when = when_lsl - self.clock.offset_s
        self.stream.start(repetitions=1, when=self._when, wait_for_start=0)
        self._end = when_lsl + buf.shape[0] / SRATE

    def onset_lsl(self, timeout_s: float = 2.0) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.stream.status
            if st.get("StartTime", 0) > 0 and st.get("ElapsedOutSamples", 0) > 0:
                return float(st["StartTime"]) + self.clock.offset_s
            time.sleep(0.005)
        raise AvlabError(
            f"Psychtoolbox audio on {self.device_name!r} did not start playing "
            f"(0 samples out after {timeout_s:g} s).",
            "PsychPortAudio does not run on PulseAudio's ALSA plugin: use "
            "--audio-backend sounddevice, or a real ALSA hardware device.",
        )

    def busy(self) -> bool:
        return bool(self.stream.status.get("Active", 0))

    def stop_sound(self) -> None:
        self.stream.stop()

    def close(self) -> None:
        self.stream.close()


def open_player(backend: str, device: str | None, *, buffer_s: float = 0.1) -> AudioPlayer:
    """Open the audio output (see the module docstring for the backends).

    Parameters
    ----------
    backend : {"auto", "ptb", "sounddevice"}
    device : str | None
    buffer_s : float
        Output buffer (latency) asked of PortAudio, s (sounddevice backend).

    Returns
    -------
    player : AudioPlayer
    """
    chosen = choose_backend(backend, device)
    logger.info("audio backend %s (asked: %s)", chosen, backend)
    return _PTBPlayer(device) if chosen == "ptb" else _SoundDevicePlayer(device, buffer_s)
