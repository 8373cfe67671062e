"""Deterministic speech-like talkers, evaluated at any lab time.

A talker is a voiced harmonic complex (pitch contour, two vowel-like formant
colourings mixed per syllable) amplitude-modulated by a syllabic envelope
(Hann-shaped syllables at 3-7 Hz, grouped in phrases separated by pauses) and
gated by the trial schedule. Everything is a closed-form function of lab time
``tau`` (seconds), drawn from per-epoch seeded generators, so any stream can
sample it on its own clock grid and the EEG's TRF input is exactly the
envelope of the audio the talkers stream carries. Optionally a WAV file per
talker replaces the synthesis (looped; its envelope is computed from it).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.io import wavfile

from avlab.errors import AvlabError
from avlab.sim.schedule import Schedule

__all__ = ["SpeechSynth"]

_EPOCH_S = 8.0
_LEVEL = 0.25  # carrier RMS 1 -> output RMS at envelope 1
_VOWELS = (
    ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)),  # /a/
    ((270.0, 60.0), (2290.0, 100.0), (3010.0, 200.0)),  # /i/
)


def _harmonic_amps(f0: float, srate: float, formants: tuple) -> np.ndarray:
    k = np.arange(1, int(min(4000.0, 0.45 * srate) // f0) + 1)
    f = k * f0
    amp = np.zeros(k.size)
    for fc, bw in formants:
        amp += 1.0 / np.sqrt(1.0 + ((f - fc) / (0.5 * bw + 0.1 * f)) ** 2)
    amp /= np.sqrt(k)
    return amp / np.sqrt(np.sum(amp**2) / 2.0)


class SpeechSynth:
    """Two talkers as functions of lab time.

    Parameters
    ----------
    schedule : Schedule
        Gates the speech to the trials.
    seed : int
        Random seed.
    f0_hz : tuple of float
        Mean fundamental frequency of each talker, Hz.
    srate : float
        Audio rate the harmonics must stay below, Hz.
    wavs : tuple of Path | None
        Optional WAV file per talker, used instead of the synthesis.
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        seed: int,
        f0_hz: tuple[float, float] = (115.0, 205.0),
        srate: float = 48000.0,
        wavs: tuple[Path, Path] | None = None,
    ) -> None:
        self.schedule = schedule
        self.seed = seed
        self.f0 = f0_hz
        rng = np.random.default_rng([seed, 0x5E])
        self._pitch = [(rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.2, 0.5)) for _ in range(2)]
        self._amps = [
            np.stack([_harmonic_amps(f, srate, v) for v in _VOWELS]) for f in f0_hz
        ]  # (2 vowels, n_harmonics) per talker
        self._wavs = [_load_wav(p, srate) for p in wavs] if wavs else None
        self._lock = threading.Lock()
        self._cache: dict[tuple, np.ndarray] = {}

    # -- syllable plan ------------------------------------------------------
    @lru_cache(maxsize=64)  # noqa: B019 - a few epochs per talker, instance lives for the run
    def _plan(self, talker: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0x5A, talker, epoch + 2**20])
        t, end = epoch * _EPOCH_S + rng.uniform(0.0, 0.2), (epoch + 1) * _EPOCH_S
        rows = []
        while True:
            phrase_end = t + rng.uniform(0.8, 2.5)
            rate = rng.uniform(3.0, 7.0)
            while t < phrase_end:
                dur = rng.uniform(0.7, 1.3) / rate
                if t + dur > end:
                    return np.array(rows, dtype=float).reshape(-1, 4)
                rows.append((t, dur, rng.uniform(0.4, 1.0), rng.random()))
                t += dur
            t += rng.uniform(0.15, 0.6)

    def _syllables(self, talker: int, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e0, e1 = int(np.floor(tau[0] / _EPOCH_S)), int(np.floor(tau[-1] / _EPOCH_S))
        plan = np.concatenate([self._plan(talker, e) for e in range(e0, e1 + 1)])
        if plan.size == 0:
            return np.zeros(tau.shape), np.zeros(tau.shape)
        k = np.clip(np.searchsorted(plan[:, 0], tau, side="right") - 1, 0, None)
        u = (tau - plan[k, 0]) / plan[k, 1]
        inside = (u >= 0) & (u < 1)
        env = np.where(inside, plan[k, 2] * np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)
        return env, plan[k, 3]

    # -- public -------------------------------------------------------------
    def envelope(self, talker: int, tau: np.ndarray) -> np.ndarray:
        """Amplitude envelope of a talker (the TRF input), gated by the trials.

        Parameters
        ----------
        talker : int
            0 or 1.
        tau : ndarray, shape (n,)
            Lab times in seconds, ascending.

        Returns
        -------
        envelope : ndarray, shape (n,)
            Linear amplitude of the talker's signal (RMS units of the audio).
        """
        tau = np.asarray(tau, dtype=float)
        gate = self.schedule.speech_gate(tau)
        if self._wavs is not None:
            w = self._wavs[talker]
            return gate * np.interp((tau * 1000.0) % w.env.size, np.arange(w.env.size), w.env)
        return gate * _LEVEL * self._syllables(talker, tau)[0]

    def audio(self, tau: np.ndarray) -> np.ndarray:
        """Both talkers' waveforms at lab times.

        Parameters
        ----------
        tau : ndarray, shape (n,)
            Lab times in seconds, ascending.

        Returns
        -------
        audio : ndarray, shape (n, 2), float32
        """
        tau = np.asarray(tau, dtype=float)
        key = (tau.size, float(tau[0]), float(tau[-1]))
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        gate = self.schedule.speech_gate(tau)
        out = np.empty((tau.size, 2), dtype=np.float32)
        for talker in range(2):
            if not gate.any():
                out[:, talker] = 0.0
            elif self._wavs is not None:
                w = self._wavs[talker]
                pos = (tau * w.srate) % w.data.size
                out[:, talker] = gate * np.interp(pos, np.arange(w.data.size), w.data)
            else:
                out[:, talker] = gate * self._voiced(talker, tau)
        with self._lock:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = out
        return out

    def _voiced(self, talker: int, tau: np.ndarray) -> np.ndarray:
        env, vowel = self._syllables(talker, tau)
        if not env.any():
            return np.zeros(tau.shape)
        phases, depth = self._pitch[talker]
        f0 = self.f0[talker]
        # f0(t) = F0 (1 + d sin(2π 0.3 t + p0) + d/2 sin(2π 1.7 t + p1)); phase is its integral
        phi = tau.copy()
        for fm, d, p in ((0.3, 0.5 * depth, phases[0]), (1.7, 0.25 * depth, phases[1])):
            phi -= d / (2 * np.pi * fm) * np.cos(2 * np.pi * fm * tau + p)
        phi *= 2 * np.pi * f0
        amps = self._amps[talker]
        # sin(k phi) by the Chebyshev recurrence: 6 vector ops per harmonic, no sin()
        c2 = 2.0 * np.cos(phi)
        s_prev, s_cur = np.zeros_like(phi), np.sin(phi)
        acc_a, acc_i = amps[0, 0] * s_cur, amps[1, 0] * s_cur
        tmp = np.empty_like(phi)
        for k in range(1, amps.shape[1]):
            np.multiply(c2, s_cur, out=tmp)
            tmp -= s_prev
            s_prev, s_cur, tmp = s_cur, tmp, s_prev
            acc_a += amps[0, k] * s_cur
            acc_i += amps[1, k] * s_cur
        return _LEVEL * env * (vowel * acc_a + (1.0 - vowel) * acc_i)


class _Wav:
    def __init__(self, data: np.ndarray, srate: float) -> None:
        self.data = data
        self.srate = srate
        env = np.abs(signal.hilbert(data))
        sos = signal.butter(4, 30.0, fs=srate, output="sos")
        env = signal.sosfiltfilt(sos, env)
        step = srate / 1000.0
        self.env = np.maximum(env[(np.arange(int(data.size / step)) * step).astype(int)], 0.0)


def _load_wav(path: Path, srate: float) -> _Wav:
    try:
        fs, data = wavfile.read(Path(path))
    except (OSError, ValueError) as exc:
        raise AvlabError(
            f"cannot read talker WAV {path}: {exc}.", "Give a PCM or float WAV file."
        ) from exc
    data = np.asarray(data, dtype=float)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if np.issubdtype(np.asarray(data).dtype, np.integer) or np.abs(data).max() > 1.0:
        data = data / (np.abs(data).max() or 1.0)
    if fs != srate:
        g = np.gcd(int(fs), int(srate))
        data = signal.resample_poly(data, int(srate) // g, int(fs) // g)
    data = data / (np.sqrt(np.mean(data**2)) or 1.0) * _LEVEL
    return _Wav(data, srate)
