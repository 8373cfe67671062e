"""The simulated participant: reacts to a real presentation, seen through its markers.

In paradigm mode (``SimConfig.paradigm``) the simulated lab does not draw its
own trials. A listener thread reads the presenter's LSL marker stream (the
same stream the recorder records) and turns each marker into what a
participant would perceive: at ``trial_start`` the talkers' stimulus files
start playing at the marker's time, ``cue``/``switch`` move attention (and
gaze) to the cued talker, ``trial_end`` stops the speech. The EEG's TRF
responses are then computed from the envelopes of the very files the
presenter played, and the gaze fixates the attended talker's face.

:class:`Paradigm` stands in for both :class:`~avlab.sim.schedule.Schedule`
and :class:`~avlab.sim.speech.SpeechSynth` (same methods), so the EEG, gaze
and audio models run unchanged. Markers arrive a few milliseconds after the
times they carry; the lab therefore emits every stream ``emit_delay_s`` after
the samples' true times (an amplifier's transmission latency), which leaves
time for a marker to be known before the samples it affects are generated.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl
import soundfile as sf
from scipy import signal

from avlab._logging import logger
from avlab.errors import StreamNotFoundError
from avlab.sim.blinks import Blinks
from avlab.sim.gaze import GazeModel
from avlab.sim.speech import _LEVEL

__all__ = ["SCENE_PX_PER_HEIGHT", "MarkerListener", "Paradigm", "ParadigmGaze", "screen_to_scene"]

#: Scene-camera pixels per screen height unit for the simulated head pose
#: (the screen centre at the scene camera's centre, (800, 600) px; faces at
#: x = +-0.45 height units land at 480 and 1120 px, as in :data:`avlab.sim.gaze.FACES`).
SCENE_PX_PER_HEIGHT = 711.1
_SIDE_X = {"left": -0.45, "right": 0.45, "center": 0.0}
_FACE_Y = 0.05
_ENV_RATE = 1000.0  # envelope sampling rate, Hz
_MAX_TALKERS = 2


def screen_to_scene(xy: np.ndarray) -> np.ndarray:
    """Map screen positions (height units) to the simulated scene camera (pixels).

    Parameters
    ----------
    xy : ndarray, shape (..., 2)
        Screen positions, PsychoPy height units (y up).

    Returns
    -------
    px : ndarray, shape (..., 2)
        Scene-camera pixels (y down).
    """
    xy = np.asarray(xy, dtype=float)
    return np.stack(
        [800.0 + SCENE_PX_PER_HEIGHT * xy[..., 0], 600.0 - SCENE_PX_PER_HEIGHT * xy[..., 1]],
        axis=-1,
    )


@dataclass
class _Trial:
    index: int
    onset: float  # lab time of the audio onset, s
    end: float  # lab time of the end (inf until trial_end)
    audio: np.ndarray  # (n, n_talkers) at srate
    env: np.ndarray  # (m, n_talkers) at _ENV_RATE
    sides: list[str] = field(default_factory=list)


class Paradigm:
    """Trials, attention and talker signals as the presentation unfolds.

    Parameters
    ----------
    stimuli_dir : Path
        Folder with the built stimuli (``<stim_id>.wav``).
    srate : float
        Audio rate of the lab's audio streams, Hz.
    """

    def __init__(self, stimuli_dir: Path, *, srate: float = 48000.0) -> None:
        self.stimuli_dir = Path(stimuli_dir)
        self.srate = float(srate)
        self._lock = threading.Lock()
        self._trials: list[_Trial] = []
        self._spans: list[list[float]] = []  # [start, end, talker, trial]
        self._sides: dict[int, list[str]] = {}
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.n_markers = 0

    # -- perception ---------------------------------------------------------------
    def _load(self, stim_id: str) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(stim_id)
        if hit is not None:
            return hit
        path = self.stimuli_dir / f"{stim_id}.wav"
        data, fs = sf.read(path, dtype="float64", always_2d=True)
        data = data.mean(axis=1)
        if fs != self.srate:
            g = int(np.gcd(int(fs), int(self.srate)))
            data = signal.resample_poly(data, int(self.srate) // g, int(fs) // g)
        rms = float(np.sqrt(np.mean(data**2))) or 1.0
        data = data / rms * _LEVEL
        env = np.abs(signal.hilbert(data))
        env = signal.sosfiltfilt(signal.butter(4, 30.0, fs=self.srate, output="sos"), env)
        step = self.srate / _ENV_RATE
        env = np.maximum(env[(np.arange(int(data.size / step)) * step).astype(int)], 0.0)
        self._cache[stim_id] = (data, env)
        return data, env

    def on_marker(self, marker: dict, tau: float) -> None:
        """Update the participant's world from one presenter marker.

        Parameters
        ----------
        marker : dict
            The decoded JSON marker (see the marker vocabulary in docs/presenter.md).
        tau : float
            Lab time the marker carries, s.
        """
        event = marker.get("event")
        trial = int(marker.get("trial") or 0)
        with self._lock:
            self.n_markers += 1
            if event in ("cue", "switch") and marker.get("attended") is not None:
                self._attend(tau, int(marker["attended"]), trial)
                if "side" in marker and event == "cue":
                    self._sides.setdefault(trial, [])
            elif event == "trial_start":
                self._start(marker, tau, trial)
            elif event in ("trial_end", "abort"):
                for t in self._trials:
                    if t.index == trial and t.end == np.inf:
                        t.end = tau
                if self._spans and self._spans[-1][1] == np.inf:
                    self._spans[-1][1] = tau

    def _attend(self, tau: float, talker: int, trial: int) -> None:
        if self._spans and self._spans[-1][1] == np.inf:
            self._spans[-1][1] = tau
        self._spans.append([tau, np.inf, float(talker), float(trial)])

    def _start(self, marker: dict, tau: float, trial: int) -> None:
        stims = [s for s in (marker.get("stims") or []) if s][:_MAX_TALKERS]
        loaded = []
        for s in stims:
            try:
                loaded.append(self._load(s))
            except (OSError, RuntimeError) as exc:
                logger.warning("simulated participant cannot hear %s: %s", s, exc)
        if loaded:
            n = max(a.size for a, _ in loaded)
            m = max(e.size for _, e in loaded)
            audio = np.zeros((n, len(loaded)))
            env = np.zeros((m, len(loaded)))
            for k, (a, e) in enumerate(loaded):
                audio[: a.size, k], env[: e.size, k] = a, e
        else:
            audio, env = np.zeros((0, 0)), np.zeros((0, 0))
        sides = list(marker.get("sides") or [])
        self._trials.append(_Trial(trial, tau, np.inf, audio, env, sides))
        attended = marker.get("attended")
        if attended is None and loaded:
            attended = 0  # one talker and no cue: the participant listens to it
        if attended is not None and not (self._spans and self._spans[-1][1] == np.inf):
            self._attend(tau, int(attended), trial)

    def preload(self, stim_id: str) -> None:
        """Decode a stimulus (audio and envelope) before its trial starts.

        The live lab never calls this; the offline simulator does, from a
        thread, so that decoding overlaps the generation of earlier data.
        A stimulus that cannot be read is left for :meth:`on_marker` to report.
        """
        try:
            self._load(stim_id)
        except (OSError, RuntimeError):
            pass

    def forget(self, before: float) -> None:
        """Drop the trials whose sound ended before lab time ``before`` (s).

        The live lab never calls this. The offline simulator
        (:mod:`avlab.sim.offline`) does, between blocks, so that a long session
        keeps only the trials still heard in memory; the attention spans and the
        decoded stimuli stay. Leave at least the TRF length (0.5 s) before the
        next sample to generate.
        """
        with self._lock:
            self._trials = [
                t
                for t in self._trials
                if min(t.end, t.onset + t.audio.shape[0] / self.srate) >= before
            ]

    # -- Schedule's interface ----------------------------------------------------
    @property
    def trials(self) -> np.ndarray:
        """``[onset, end]`` of every trial heard so far, lab seconds, shape (n, 2)."""
        with self._lock:
            rows = [(t.onset, min(t.end, t.onset + t.audio.shape[0] / self.srate))
                    for t in self._trials]  # fmt: skip
        return np.array(rows, dtype=float).reshape(-1, 2)

    @property
    def spans(self) -> np.ndarray:
        """``[start, end, talker, trial]`` of every attention span, shape (n, 4)."""
        with self._lock:
            return np.array(self._spans, dtype=float).reshape(-1, 4)

    def attended(self, tau: np.ndarray) -> np.ndarray:
        """Attended talker index at lab times (-1 when none), shape like ``tau``."""
        tau = np.asarray(tau, dtype=float)
        out = np.full(tau.shape, -1, dtype=np.int64)
        for s in self.spans:
            out[(tau >= s[0]) & (tau < s[1])] = int(s[2])
        return out

    def speech_gate(self, tau: np.ndarray, ramp_s: float = 0.01) -> np.ndarray:
        """1 while a trial's speech plays, 0 otherwise (raised-cosine ramps of ``ramp_s``)."""
        tau = np.asarray(tau, dtype=float)
        gate = np.zeros(tau.shape)
        for on, off in self.trials:
            x = np.clip(np.minimum(tau - on, off - tau) / ramp_s, 0.0, 1.0)
            gate = np.maximum(gate, np.sin(0.5 * np.pi * x) ** 2)
        return gate

    def gaze_target(self, tau: float, *, other: bool = False) -> np.ndarray | None:
        """Screen position (height units) of the attended talker's face, or None.

        With ``other``, the face of the talker who is not attended (the attended
        face when the trial has a single talker).
        """
        k = int(self.attended(np.array([tau]))[0])
        if k < 0:
            return None
        with self._lock:
            span_trial = [int(s[3]) for s in self._spans if s[0] <= tau < s[1]]
            trial = span_trial[-1] if span_trial else -1
            sides = next((t.sides for t in reversed(self._trials) if t.index == trial), None)
        if other and (sides is None or len(sides) >= 2):
            k = 1 - k
        if sides and k < len(sides):
            return np.array([_SIDE_X.get(sides[k], 0.0), _FACE_Y])
        return np.array([_SIDE_X["left" if k == 0 else "right"], _FACE_Y])

    # -- SpeechSynth's interface --------------------------------------------------
    def _overlapping(self, tau: np.ndarray) -> list[_Trial]:
        with self._lock:
            trials = list(self._trials)
        lo, hi = float(tau[0]), float(tau[-1])
        return [t for t in trials if t.onset <= hi and min(
            t.end, t.onset + t.audio.shape[0] / self.srate) >= lo]  # fmt: skip

    def envelope(self, talker: int, tau: np.ndarray) -> np.ndarray:
        """Envelope of talker ``talker`` (TRF input, audio RMS units), shape like ``tau``."""
        tau = np.asarray(tau, dtype=float)
        out = np.zeros(tau.shape)
        for t in self._overlapping(tau):
            if talker >= t.env.shape[1]:
                continue
            pos = (tau - t.onset) * _ENV_RATE
            ok = (pos >= 0) & (pos < t.env.shape[0] - 1) & (tau < t.end)
            out[ok] += _lerp(t.env[:, talker], pos[ok])
        return out

    def audio(self, tau: np.ndarray) -> np.ndarray:
        """Both talker channels as heard, shape (n, 2), float32."""
        tau = np.asarray(tau, dtype=float)
        out = np.zeros((tau.size, _MAX_TALKERS))
        for t in self._overlapping(tau):
            pos = (tau - t.onset) * self.srate
            ok = (pos >= 0) & (pos < t.audio.shape[0] - 1) & (tau < t.end)
            for k in range(t.audio.shape[1]):
                out[ok, k] += _lerp(t.audio[:, k], pos[ok])
        return out.astype(np.float32)

    def audio_by_side(self, tau: np.ndarray) -> np.ndarray:
        """Return the talkers by where they stand: columns (left, right), shape (n, 2), float32.

        A talker shown on the left face goes to column 0, on the right to column 1,
        in the centre half to each; a trial without sides keeps the talker order.
        """
        tau = np.asarray(tau, dtype=float)
        out = np.zeros((tau.size, 2))
        for t in self._overlapping(tau):
            pos = (tau - t.onset) * self.srate
            ok = (pos >= 0) & (pos < t.audio.shape[0] - 1) & (tau < t.end)
            for k in range(t.audio.shape[1]):
                side = t.sides[k] if k < len(t.sides) else ("left", "right")[k % 2]
                w = {"left": (1.0, 0.0), "right": (0.0, 1.0)}.get(side, (0.5, 0.5))
                y = _lerp(t.audio[:, k], pos[ok])
                out[ok, 0] += w[0] * y
                out[ok, 1] += w[1] * y
        return out.astype(np.float32)


def _lerp(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` at fractional indices ``pos`` (0 <= pos < len - 1).

    ``np.interp`` with ``np.arange(len(x))`` as support would build a whole-trial
    index array for every 20 ms block; this reads only the two neighbours.
    """
    i0 = pos.astype(np.int64)
    frac = pos - i0
    return x[i0] * (1.0 - frac) + x[i0 + 1] * frac


class ParadigmGaze(GazeModel):
    """Gaze planned incrementally, as markers arrive (fixations on the attended face).

    Parameters
    ----------
    paradigm : Paradigm
        Who is attended when, and where the faces are.
    blinks : Blinks
        Shared blink events.
    seed : int
        Random seed.
    look_attended : float
        Share (0-1) of trial time the gaze is on the attended talker's face; the rest
        are glances of 0.4-1.5 s at the other talker's face. 1 (default) reproduces
        the earlier, always-attended gaze sample for sample.
    """

    def __init__(
        self, paradigm: Paradigm, blinks: Blinks, *, seed: int, look_attended: float = 1.0
    ) -> None:
        super().__init__(paradigm, blinks, seed=seed)  # type: ignore[arg-type]
        self.paradigm = paradigm
        self.look_attended = look_attended
        self._plan_rng = np.random.default_rng([seed, 0x6C])
        self._fix: list[tuple[float, float, float, float, float, float]] = []
        self._t_next = 0.0
        self._n_spans = 0
        self._moved = False  # attention moved: the next fixation is on the new target
        self._away = False  # the current fixation is a glance at the other talker

    def _new_target(self, tau: float) -> tuple[np.ndarray, bool]:
        """Scene position of a new fixation, and whether it is a look at the other talker."""
        rng = self._plan_rng
        target = self.paradigm.gaze_target(tau)
        if target is None:
            return np.array([800.0, 600.0]) + rng.normal(0.0, 15.0, 2), False
        away = False
        if self.look_attended < 1.0 and not self._moved:
            # a glance (0.4-1.5 s, mean 0.95 s) replaces a fixation (mean 0.45 s) with
            # probability q, chosen so that the share of time on the attended face is p
            p = self.look_attended
            q = 0.45 * (1.0 - p) / (0.45 * (1.0 - p) + 0.95 * p)
            away = rng.random() < q / 0.7  # 30 % of fixations are microsaccades, not decisions
        if away:
            target = self.paradigm.gaze_target(tau, other=True)
        return self._target_px(target, rng), away

    def _target_px(self, screen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from avlab.sim.gaze import _POINT_P, _POINTS

        return screen_to_scene(screen) + _POINTS[rng.choice(4, p=_POINT_P)] + rng.normal(0, 8, 2)

    def _extend(self, until: float) -> None:
        spans = self.paradigm.spans
        if len(spans) > self._n_spans:  # attention moved: react 150-300 ms later
            change = float(spans[-1, 0])
            self._n_spans = len(spans)
            self._moved = True
            if self._fix and change < self._t_next:
                self._t_next = max(change + self._plan_rng.uniform(0.15, 0.3), self._fix[-1][0])
        rng = self._plan_rng
        while self._t_next <= until:
            t = self._t_next
            micro = rng.random() < 0.3 and not self._moved and not self._away
            if self._fix and micro and self.paradigm.gaze_target(t) is not None:
                pos = np.array(self._fix[-1][1:3]) + rng.normal(0.0, 6.0, 2)
                away = False
            else:
                pos, away = self._new_target(t)
                self._moved = False
            vel = rng.normal(0.0, 8.0, 2)
            self._fix.append((t, pos[0], pos[1], vel[0], vel[1], 0.04))
            self._away = away  # a glance ends with a new target, not a microsaccade
            self._t_next = t + (rng.uniform(0.4, 1.5) if away else rng.uniform(0.2, 0.7))
        if len(self._fix) > 256:
            del self._fix[:-64]

    def _position(self, tau: np.ndarray) -> np.ndarray:
        if not self._fix:
            self._t_next = float(tau[0])
        self._extend(float(tau[-1]))
        plan = np.array(self._fix)
        plan = np.concatenate([plan[:1], plan])  # a previous row for the first fixation
        k = np.clip(np.searchsorted(plan[:, 0], tau, side="right") - 1, 1, None)
        cur, prev = plan[k], plan[k - 1]
        dt = tau - cur[:, 0]
        prev_end = prev[:, 1:3] + prev[:, 3:5] * (cur[:, 0] - prev[:, 0])[:, None]
        target = cur[:, 1:3] + cur[:, 3:5] * dt[:, None]
        u = np.clip(dt / cur[:, 5], 0.0, 1.0)
        w = (u * u * (3.0 - 2.0 * u))[:, None]
        return prev_end + w * (target - prev_end)


class MarkerListener(threading.Thread):
    """Reads the presenter's marker stream and feeds :meth:`Paradigm.on_marker`.

    Parameters
    ----------
    name : str
        LSL name of the presenter's marker stream.
    paradigm : Paradigm
    to_lab_time : callable
        Maps a time on this process's LSL clock to lab time.
    stopping : threading.Event
    on_change : callable
        Called after every marker (the lab rewrites its truth file).
    wait_s : float
        Seconds to wait for the stream to appear.
    """

    def __init__(
        self,
        name: str,
        paradigm: Paradigm,
        *,
        to_lab_time: Callable[[float], float],
        stopping: threading.Event,
        on_change: Callable[[], None],
        wait_s: float = 60.0,
    ) -> None:
        super().__init__(name="sim-participant", daemon=True)
        self.stream, self.paradigm = name, paradigm
        self.to_lab_time, self.stopping, self.on_change = to_lab_time, stopping, on_change
        self.wait_s = wait_s
        self.error: BaseException | None = None

    def run(self) -> None:
        """Follow the marker stream until the lab stops (errors kept in ``error``)."""
        try:
            self._run()
        except BaseException as exc:  # reported by SimLab.stop()
            self.error = exc
            logger.exception("simulated participant failed")

    def _run(self) -> None:
        infos: list[pylsl.StreamInfo] = []
        waited = 0.0
        while not infos and not self.stopping.is_set():
            infos = pylsl.resolve_byprop("name", self.stream, timeout=1.0)
            waited += 1.0
            if waited >= self.wait_s and not infos:
                raise StreamNotFoundError(
                    f"the simulated participant found no marker stream {self.stream!r}.",
                    "Start the presenter (avlab run --simulate does) or check the name.",
                )
        if not infos:
            return
        inlet = pylsl.StreamInlet(infos[0], recover=True)
        inlet.open_stream(timeout=5.0)
        offset = inlet.time_correction(timeout=5.0)
        logger.info("simulated participant follows %r", self.stream)
        while not self.stopping.is_set():
            value, stamp = inlet.pull_sample(timeout=0.1)
            if value is None:
                continue
            try:
                marker = json.loads(value[0])
            except (json.JSONDecodeError, TypeError):
                continue
            self.paradigm.on_marker(marker, self.to_lab_time(stamp + offset))
            self.on_change()
