"""Eye blinks shared by the EEG (frontal artefact) and the gaze (blink flag)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["Blinks"]

_EPOCH_S = 8.0


class Blinks:
    """Blink times drawn per epoch (Poisson), evaluated at any lab time.

    Parameters
    ----------
    seed : int
        Random seed.
    rate_hz : float
        Mean blink rate, Hz.
    """

    def __init__(self, *, seed: int, rate_hz: float = 0.25) -> None:
        self.seed = seed
        self.rate_hz = rate_hz

    @lru_cache(maxsize=64)  # noqa: B019 - few epochs, instance lives for the run
    def _plan(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0xB1, epoch + 2**20])
        n = rng.poisson(self.rate_hz * _EPOCH_S)
        on = np.sort(rng.uniform(0.0, _EPOCH_S - 0.4, n)) + epoch * _EPOCH_S
        keep = np.concatenate([[True], np.diff(on) > 0.5]) if n else np.zeros(0, bool)
        on = on[keep]
        return np.stack([on, rng.uniform(0.15, 0.3, on.size), rng.uniform(0.7, 1.0, on.size)], 1)

    def waveform(self, tau: np.ndarray) -> np.ndarray:
        """Blink amplitude at lab times (0 outside blinks, peak 0.7-1).

        Parameters
        ----------
        tau : ndarray, shape (n,)
            Lab times in seconds, ascending.

        Returns
        -------
        amplitude : ndarray, shape (n,)
        """
        tau = np.asarray(tau, dtype=float)
        e0, e1 = int(np.floor(tau[0] / _EPOCH_S)), int(np.floor(tau[-1] / _EPOCH_S))
        plan = np.concatenate([self._plan(e) for e in range(e0, e1 + 1)])
        if plan.size == 0:
            return np.zeros(tau.shape)
        k = np.clip(np.searchsorted(plan[:, 0], tau, side="right") - 1, 0, None)
        u = (tau - plan[k, 0]) / plan[k, 1]
        return np.where((u >= 0) & (u < 1), plan[k, 2] * np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0)
