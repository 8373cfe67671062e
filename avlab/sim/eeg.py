"""The simulated EEG: background, blinks and TRF responses to the talkers.

Signal model (µV, per channel ``c``)::

    x_c(t) = sum_s A_cs pink_s(t) + B_c alpha(t) + F_c blink(t) + n_c(t)
             + g P_c [h * e_att](t) + g u P_c [h * e_unatt](t)

``pink`` are 1/f sources, ``alpha`` two occipital 10 Hz resonators (waxing and
waning by construction), ``n`` white sensor noise, ``h`` the TRF kernel
(P1-N1-P2-like, 0-0.5 s), ``e`` the talkers' envelopes, ``u`` the unattended
gain, ``P`` a fronto-central pattern with polarity reversal at the mastoids.
``g`` is set so that the TRF response power over the background power
(1/f + alpha + noise; blinks excluded), both averaged over channels during
speech, equals ``snr_db``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from avlab.sim.blinks import Blinks
from avlab.sim.config import EEGConfig
from avlab.sim.montage import montage
from avlab.sim.schedule import Schedule
from avlab.sim.speech import SpeechSynth

__all__ = ["EEGModel", "trf_kernel"]

_N_PINK = 10
# Paul Kellet's economy pinking filter (about -3 dB/octave)
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


def trf_kernel(srate: float, length_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Return the attended TRF kernel (unit peak).

    Parameters
    ----------
    srate : float
        Sampling rate of the kernel, Hz.
    length_s : float
        Kernel length, seconds.

    Returns
    -------
    lags : ndarray, shape (n_lags,)
        Lags in seconds, from 0.
    kernel : ndarray, shape (n_lags,)
    """
    lags = np.arange(int(round(length_s * srate)) + 1) / srate
    h = np.zeros_like(lags)
    for lat, width, amp in ((0.05, 0.015, 0.6), (0.10, 0.025, -1.0), (0.19, 0.04, 0.55)):
        h += amp * np.exp(-0.5 * ((lags - lat) / width) ** 2)
    return lags, h / np.abs(h).max()


def _pattern(pos: np.ndarray, centre: np.ndarray, width: float) -> np.ndarray:
    d = 1.0 - pos @ (centre / np.linalg.norm(centre))
    return np.exp(-d / width)


class EEGModel:
    """Generates EEG blocks in order (stateful filters, seeded noise).

    Parameters
    ----------
    cfg : EEGConfig
        Channel count, rate, amplitudes and SNR.
    speech : SpeechSynth
        The talkers whose envelopes drive the TRF.
    schedule : Schedule
        Who is attended when.
    blinks : Blinks
        Shared blink events.
    seed : int
        Random seed.
    """

    def __init__(
        self,
        cfg: EEGConfig,
        *,
        speech: SpeechSynth,
        schedule: Schedule,
        blinks: Blinks,
        seed: int,
    ) -> None:
        self.cfg = cfg
        self.speech, self.schedule, self.blinks = speech, schedule, blinks
        self.labels, self.positions = montage(cfg.n_channels)
        rng = np.random.default_rng([seed, 0xEE])
        self._rng = np.random.default_rng([seed, 0xEF])
        centres = rng.normal(size=(_N_PINK, 3))
        centres[:, 2] = np.abs(centres[:, 2])
        mix = np.stack([_pattern(self.positions, c, 0.4) for c in centres], axis=1)
        mix *= rng.choice([-1.0, 1.0], size=_N_PINK)
        self._pink_mix = mix  # (n_ch, n_pink)
        alpha_c = np.array([[-0.3, -0.9, 0.2], [0.3, -0.9, 0.2]])
        self._alpha_mix = np.stack([_pattern(self.positions, c, 0.3) for c in alpha_c], axis=1)
        self._alpha_mix /= self._alpha_mix.max()
        self.blink_pattern = _pattern(self.positions, np.array([0.0, 1.0, -0.1]), 0.15)
        trf = _pattern(self.positions, np.array([0.0, 0.35, 0.94]), 0.5)
        self.trf_pattern = (trf - 0.25) / (trf - 0.25).max()
        fs = cfg.srate
        self._pink_zi = np.zeros((_PINK_A.size - 1, _N_PINK))
        r = np.exp(-np.pi * 1.5 / fs)  # 1.5 Hz bandwidth: waxing and waning alpha
        w = 2 * np.pi * 10.0 / fs
        self._alpha_ba = (np.array([1.0 - r]), np.array([1.0, -2 * r * np.cos(w), r * r]))
        self._alpha_zi = np.zeros((2, 2))
        self.trf_lags, self.trf = trf_kernel(fs)
        self._hist: np.ndarray | None = None  # (n_lags - 1, 2) past envelopes
        self._hist_end: float | None = None
        self._scale_background(seed)
        self.trf_gain = self._trf_gain(seed)

    # -- calibration --------------------------------------------------------
    def _scale_background(self, seed: int) -> None:
        fs = self.cfg.srate
        rng = np.random.default_rng([seed, 0xCA])
        n = int(20 * fs)
        pink = signal.lfilter(_PINK_B, _PINK_A, rng.normal(size=(n, _N_PINK)), axis=0)[n // 4 :]
        p = pink @ self._pink_mix.T
        self._pink_mix *= self.cfg.background_uv / np.sqrt(np.mean(p**2))
        b, a = self._alpha_ba
        al = signal.lfilter(b, a, rng.normal(size=(n, 2)), axis=0)[n // 4 :]
        self._alpha_mix *= self.cfg.alpha_uv / np.sqrt(np.mean(al**2))
        pwr_pink = np.mean((pink @ self._pink_mix.T) ** 2)
        pwr_alpha = np.mean((al @ self._alpha_mix.T) ** 2)
        self.background_power = pwr_pink + pwr_alpha + self.cfg.sensor_noise_uv**2

    def _trf_gain(self, seed: int) -> float:
        fs = self.cfg.srate
        tau = np.arange(int(20 * fs)) / fs
        trials = np.array([[-1.0, 1e9]])
        on = SpeechSynth(Schedule(trials=trials, spans=np.zeros((0, 4))), seed=seed + 1)
        e = np.stack([on.envelope(k, tau) for k in range(2)], axis=1)
        r = signal.fftconvolve(e, self.trf[:, None], axes=0)[: tau.size]
        resp = r[:, 0] + self.cfg.unattended_gain * r[:, 1]
        pwr = np.mean(resp**2) * np.mean(self.trf_pattern**2)
        return float(np.sqrt(self.background_power * 10 ** (self.cfg.snr_db / 10) / pwr))

    # -- generation ---------------------------------------------------------
    def _envelopes(self, tau: np.ndarray) -> np.ndarray:
        n_hist = self.trf.size - 1
        step = 1.0 / self.cfg.srate
        fresh = self._hist is None or abs(tau[0] - step - self._hist_end) > 0.5 * step
        if fresh:  # first block or a new segment: evaluate the past directly
            past = tau[0] - step * np.arange(n_hist, 0, -1)
            self._hist = np.stack([self.speech.envelope(k, past) for k in range(2)], axis=1)
        now = np.stack([self.speech.envelope(k, tau) for k in range(2)], axis=1)
        full = np.concatenate([self._hist, now])
        self._hist, self._hist_end = full[-n_hist:], float(tau[-1])
        return full

    def block(self, tau: np.ndarray) -> np.ndarray:
        """EEG for consecutive samples.

        Parameters
        ----------
        tau : ndarray, shape (n,)
            Lab times of the samples, seconds, ascending.

        Returns
        -------
        eeg : ndarray, shape (n, n_channels), float32
            Microvolts.
        """
        n = tau.size
        rng = self._rng
        pink, self._pink_zi = signal.lfilter(
            _PINK_B, _PINK_A, rng.normal(size=(n, _N_PINK)), axis=0, zi=self._pink_zi
        )
        b, a = self._alpha_ba
        alpha, self._alpha_zi = signal.lfilter(
            b, a, rng.normal(size=(n, 2)), axis=0, zi=self._alpha_zi
        )
        out = rng.normal(scale=self.cfg.sensor_noise_uv, size=(n, self.cfg.n_channels))
        out += pink @ self._pink_mix.T
        out += alpha @ self._alpha_mix.T
        blink = self.blinks.waveform(tau)
        if blink.any():
            out += np.outer(blink * self.cfg.blink_uv, self.blink_pattern)
        env = self._envelopes(tau)
        if env.any():
            conv = np.stack(
                [np.convolve(env[:, k], self.trf, mode="valid") for k in range(2)], axis=1
            )
            att = self.schedule.attended(tau)
            a0 = conv[:, 0] + self.cfg.unattended_gain * conv[:, 1]
            a1 = conv[:, 1] + self.cfg.unattended_gain * conv[:, 0]
            resp = np.where(att == 1, a1, a0)  # between trials only the 0.5 s tail remains
            out += np.outer(self.trf_gain * resp, self.trf_pattern)
        return out.astype(np.float32)
