"""Private synthetic trials and tiny decoders for the evaluation tests (cv, metrics, report, io)."""

from __future__ import annotations

import hashlib

import numpy as np

from avlab.decode.base import AttentionDecoder, Trial, window_corr

SFREQ = 32.0


def smooth_noise(rng: np.random.Generator, n: int, width: int = 8) -> np.ndarray:
    """Positive low-pass noise, like a speech envelope."""
    x = np.convolve(rng.standard_normal(n + width), np.ones(width) / width, mode="valid")[:n]
    return x - x.mean()


def make_trials(
    n_subjects: int = 2,
    n_trials: int = 6,
    duration_s: float = 30.0,
    n_channels: int = 4,
    noise: float = 1.0,
    seed: int = 0,
    shared_groups: bool = False,
) -> list[Trial]:
    """EEG = fixed spatial pattern × attended envelope + white noise (no lags).

    With ``shared_groups``, trials 2k and 2k+1 of a subject play the same stimulus pair
    (same envelopes, same group).
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * SFREQ)
    out = []
    for s in range(n_subjects):
        pattern = rng.standard_normal(n_channels)
        envs: dict[int, np.ndarray] = {}
        for t in range(n_trials):
            stim = t // 2 if shared_groups else t
            if stim not in envs:
                envs[stim] = np.stack([smooth_noise(rng, n), smooth_noise(rng, n)])
            env = envs[stim]
            eeg = np.outer(pattern, env[0]) + noise * rng.standard_normal((n_channels, n))
            out.append(
                Trial(
                    eeg=eeg,
                    envelopes=env.copy(),
                    sfreq=SFREQ,
                    subject=f"{s + 1:02d}",
                    trial=t + 1,
                    group=f"stim{stim}",
                    ch_names=[f"E{c}" for c in range(n_channels)],
                    run="01",
                    stim_files=(f"s{s}a{stim}.wav", f"s{s}b{stim}.wav"),
                )
            )
    return out


class LstsqDecoder(AttentionDecoder):
    """Spatial filter by ridge least squares; score = r(ŷ, a) − r(ŷ, b) per window."""

    def __init__(self, *, alpha: float = 1e-3, sfreq: float = SFREQ) -> None:
        self.alpha = alpha
        self.sfreq = sfreq

    def prepare(self, eeg, attended, unattended=None, *, gaze=None):
        return [(x @ x.T, x @ a) for x, a in zip(eeg, attended, strict=True)]

    def fit(self, eeg, attended, unattended=None, *, gaze=None, groups=None, prepared=None):
        if prepared is None:
            prepared = self.prepare(eeg, attended)
        xx = sum(p[0] for p in prepared)
        xy = sum(p[1] for p in prepared)
        self.coef_ = np.linalg.solve(xx + self.alpha * np.trace(xx) * np.eye(len(xy)), xy)
        return self

    def decision_function(self, eeg, env_a, env_b, *, window_s, gaze=None):
        out = []
        for x, a, b in zip(eeg, env_a, env_b, strict=True):
            y = self.coef_ @ x
            out.append(
                window_corr(y, a, self.sfreq, window_s) - window_corr(y, b, self.sfreq, window_s)
            )
        return out

    def _state_arrays(self):
        return {"coef_": self.coef_}

    def _set_state_arrays(self, arrays):
        self.coef_ = np.asarray(arrays["coef_"])


def _fp(env: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(env).tobytes()).hexdigest()


class MemoryDecoder(AttentionDecoder):
    """Leak detector: right only on envelopes it saw as attended in training, else 0 (wrong)."""

    def __init__(self, *, sfreq: float = SFREQ) -> None:
        self.sfreq = sfreq

    def fit(self, eeg, attended, unattended=None, *, gaze=None, groups=None, prepared=None):
        self.seen_ = {_fp(a) for a in attended}
        return self

    def decision_function(self, eeg, env_a, env_b, *, window_s, gaze=None):
        from avlab.decode.base import n_windows

        out = []
        for a, b in zip(env_a, env_b, strict=True):
            v = 1.0 if _fp(a) in self.seen_ else (-1.0 if _fp(b) in self.seen_ else 0.0)
            out.append(np.full(n_windows(len(a), self.sfreq, window_s), v))
        return out
