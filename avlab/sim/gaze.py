"""Neon-like gaze: fixations on the attended talker's face, saccades, blinks.

Scene-camera pixels of a 1600 x 1200 camera. The two talkers' faces sit left
and right of centre (:data:`FACES`); during a trial the participant fixates
points of the attended face (eyes, nose, mouth), with drift, microsaccades and
measurement noise, and saccades to the other face 150-300 ms after an
attention switch. Between trials the gaze rests near the centre (the cue).
Channels: ``x``, ``y`` (px), ``pupil_left``, ``pupil_right`` (mm), ``blink`` (0/1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from avlab.sim.blinks import Blinks
from avlab.sim.schedule import Schedule

__all__ = ["CAMERA_PX", "FACES", "FACE_HALF_PX", "GAZE_CHANNELS", "GazeModel"]

CAMERA_PX = (1600, 1200)
#: Face centres of talker 0 and talker 1, scene-camera pixels (x, y).
FACES = np.array([[480.0, 560.0], [1120.0, 560.0]])
#: Half width and half height of a face, pixels.
FACE_HALF_PX = (110.0, 150.0)
_CENTRE = np.array([800.0, 600.0])
_POINTS = np.array([[-35.0, -40.0], [35.0, -40.0], [0.0, 5.0], [0.0, 60.0]])  # eyes, nose, mouth
_POINT_P = np.array([0.2, 0.2, 0.15, 0.45])
_EPOCH_S = 4.0
GAZE_CHANNELS = (
    ("x", "pixels", "GazeX"),
    ("y", "pixels", "GazeY"),
    ("pupil_left", "mm", "PupilDiameter"),
    ("pupil_right", "mm", "PupilDiameter"),
    ("blink", "boolean", "Blink"),
)


class GazeModel:
    """Generates gaze blocks at any lab time (plus seeded measurement noise).

    Parameters
    ----------
    schedule : Schedule
        Who is attended when.
    blinks : Blinks
        Shared blink events.
    seed : int
        Random seed.
    """

    def __init__(self, schedule: Schedule, blinks: Blinks, *, seed: int) -> None:
        self.schedule, self.blinks, self.seed = schedule, blinks, seed
        self._rng = np.random.default_rng([seed, 0x6B])
        self._changes = np.unique(schedule.spans[:, :2]) if len(schedule.spans) else np.zeros(0)

    def _target(self, talker: int, rng: np.random.Generator) -> np.ndarray:
        if talker < 0:
            return _CENTRE + rng.normal(0.0, 15.0, 2)
        point = _POINTS[rng.choice(4, p=_POINT_P)]
        return FACES[talker] + point + rng.normal(0.0, 8.0, 2)

    @lru_cache(maxsize=16)  # noqa: B019 - few epochs, instance lives for the run
    def _plan(self, epoch: int) -> np.ndarray:
        """Fixations of one epoch: rows ``[t_on, x0, y0, vx, vy, sacc_s]``."""
        rng = np.random.default_rng([self.seed, 0x6A, epoch + 2**20])
        t, end = epoch * _EPOCH_S, (epoch + 1) * _EPOCH_S
        rows = []
        pos = None
        while t < end:
            talker = int(self.schedule.attended(np.array([t]))[0])
            if pos is not None and rng.random() < 0.3:  # microsaccade within the region
                pos = pos + rng.normal(0.0, 6.0, 2)
            else:
                pos = self._target(talker, rng)
            dur = rng.uniform(0.2, 0.7)
            nxt = self._changes[np.searchsorted(self._changes, t, side="right") :]
            if nxt.size and nxt[0] < t + dur:
                dur = nxt[0] - t + rng.uniform(0.15, 0.3)  # react to the switch
            vel = rng.normal(0.0, 8.0, 2)  # drift, px/s
            rows.append((t, pos[0], pos[1], vel[0], vel[1], 0.04))
            t += dur
        return np.array(rows, dtype=float)

    def _position(self, tau: np.ndarray) -> np.ndarray:
        e0, e1 = int(np.floor(tau[0] / _EPOCH_S)), int(np.floor(tau[-1] / _EPOCH_S))
        plans = [self._plan(e) for e in range(e0 - 1, e1 + 1)]
        plan = np.concatenate(plans)
        k = np.clip(np.searchsorted(plan[:, 0], tau, side="right") - 1, 1, None)
        cur, prev = plan[k], plan[k - 1]
        dt = tau - cur[:, 0]
        # where the previous fixation ended (after its drift)
        prev_end = prev[:, 1:3] + prev[:, 3:5] * (cur[:, 0] - prev[:, 0])[:, None]
        target = cur[:, 1:3] + cur[:, 3:5] * dt[:, None]
        u = np.clip(dt / cur[:, 5], 0.0, 1.0)
        w = (u * u * (3.0 - 2.0 * u))[:, None]  # smooth saccade profile
        return prev_end + w * (target - prev_end)

    def block(self, tau: np.ndarray) -> np.ndarray:
        """Gaze for consecutive samples.

        Parameters
        ----------
        tau : ndarray, shape (n,)
            Lab times in seconds, ascending.

        Returns
        -------
        gaze : ndarray, shape (n, 5), float32
            x, y (px), pupil left, right (mm), blink flag.
        """
        tau = np.asarray(tau, dtype=float)
        out = np.empty((tau.size, 5), dtype=np.float32)
        xy = self._position(tau) + self._rng.normal(0.0, 2.0, (tau.size, 2))
        out[:, :2] = xy
        trial = self.schedule.speech_gate(tau, ramp_s=1.0)
        slow = 0.15 * np.sin(2 * np.pi * 0.05 * tau) + 0.08 * np.sin(2 * np.pi * 0.13 * tau + 1.0)
        pupil = 3.6 + slow + 0.3 * trial
        out[:, 2] = pupil + self._rng.normal(0.0, 0.02, tau.size)
        out[:, 3] = pupil - 0.1 + self._rng.normal(0.0, 0.02, tau.size)
        out[:, 4] = self.blinks.waveform(tau) > 0
        return out
