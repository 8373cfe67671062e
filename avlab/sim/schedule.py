"""The attention schedule: trials, cues, switches and their markers.

All times here are *lab times*: seconds after the lab's start (``t_start``,
on the recorder's clock). :meth:`Schedule.to_truth` converts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from avlab.sim.config import TrialConfig
from avlab.sim.truth import AttentionSpan, MarkerTruth

__all__ = ["Schedule", "make_schedule"]


@dataclass(frozen=True)
class Schedule:
    """Trials and attention over lab time.

    Attributes
    ----------
    trials : ndarray, shape (n_trials, 2)
        Start and end of the talkers' speech in each trial, lab seconds.
    spans : ndarray, shape (n_spans, 4)
        ``[start, end, talker, trial]`` of every attention span, lab seconds.
    markers : list of (float, str)
        Lab time and JSON value of every marker, in time order.
    """

    trials: np.ndarray
    spans: np.ndarray
    markers: list[tuple[float, str]] = field(default_factory=list)

    def attended(self, tau: np.ndarray) -> np.ndarray:
        """Attended talker at lab times.

        Parameters
        ----------
        tau : ndarray, shape (n,)
            Lab times in seconds.

        Returns
        -------
        talker : ndarray of int, shape (n,)
            Index of the attended talker, -1 outside the trials.
        """
        tau = np.asarray(tau, dtype=float)
        out = np.full(tau.shape, -1, dtype=np.int64)
        if len(self.spans) == 0:
            return out
        k = np.searchsorted(self.spans[:, 0], tau, side="right") - 1
        ok = (k >= 0) & (tau < self.spans[np.clip(k, 0, None), 1])
        out[ok] = self.spans[k[ok], 2].astype(np.int64)
        return out

    def speech_gate(self, tau: np.ndarray, ramp_s: float = 0.01) -> np.ndarray:
        """Gain of the talkers' speech (1 in trials, 0 between, raised-cosine ramps).

        Parameters
        ----------
        tau : ndarray, shape (n,)
            Lab times in seconds.
        ramp_s : float
            Ramp duration in seconds.

        Returns
        -------
        gate : ndarray, shape (n,)
        """
        tau = np.asarray(tau, dtype=float)
        gate = np.zeros(tau.shape)
        if len(self.trials) == 0:
            return gate
        k = np.clip(np.searchsorted(self.trials[:, 0], tau, side="right") - 1, 0, None)
        on, off = self.trials[k, 0], self.trials[k, 1]
        x = np.clip(np.minimum(tau - on, off - tau) / ramp_s, 0.0, 1.0)
        return np.sin(0.5 * np.pi * x) ** 2

    def to_truth(self, t_start: float) -> tuple[list[AttentionSpan], list[MarkerTruth]]:
        """Convert to truth records on the recorder's clock.

        Parameters
        ----------
        t_start : float
            True time of the lab's start, seconds.

        Returns
        -------
        spans, markers : list of AttentionSpan, list of MarkerTruth
        """
        spans = [
            AttentionSpan(
                t_start=t_start + s[0], t_end=t_start + s[1], talker=int(s[2]), trial=int(s[3])
            )
            for s in self.spans
        ]
        markers = [MarkerTruth(t_true=t_start + t, value=v) for t, v in self.markers]
        return spans, markers


def _marker(event: str, **fields: int) -> str:
    return json.dumps({"event": event, **fields}, separators=(",", ":"))


def make_schedule(cfg: TrialConfig, *, seed: int, duration_s: float | None) -> Schedule:
    """Draw the trials, cued talkers and switches.

    Parameters
    ----------
    cfg : TrialConfig
        Trial timing.
    seed : int
        Random seed.
    duration_s : float | None
        Run length in seconds; with ``cfg.n_trials=None`` as many trials as fit
        are planned (100 when unbounded).

    Returns
    -------
    schedule : Schedule
    """
    rng = np.random.default_rng([seed, 0x5C])
    n_max = cfg.n_trials if cfg.n_trials is not None else 100 if duration_s is None else 10**6
    trials, spans, markers = [], [], []
    t = cfg.first_s
    for k in range(1, n_max + 1):
        on = t + cfg.cue_s
        off = on + cfg.trial_s
        if duration_s is not None and cfg.n_trials is None and off > duration_s:
            break
        att = int(rng.integers(2))
        markers.append((t, _marker("cue", trial=k, attended=att)))
        markers.append((on, _marker("trial_start", trial=k, attended=att)))
        trials.append((on, off))
        if rng.random() < cfg.switch_prob:
            t_sw = on + cfg.trial_s * rng.uniform(0.35, 0.65)
            spans += [(on, t_sw, att, k), (t_sw, off, 1 - att, k)]
            markers.append((t_sw, _marker("switch", trial=k, attended=1 - att)))
        else:
            spans.append((on, off, att, k))
        markers.append((off, _marker("trial_end", trial=k)))
        t = off + cfg.iti_s
    return Schedule(
        trials=np.array(trials, dtype=float).reshape(-1, 2),
        spans=np.array(spans, dtype=float).reshape(-1, 4),
        markers=markers,
    )
