"""Running a trained separation network on audio of any length and rate.

:class:`Separator` loads the weights shipped in ``avlab/data/separate/`` (or a
folder given by the user), resamples the input to the network's rate (8 kHz),
separates, and resamples the talkers back to the input rate. The separated
audio therefore carries no energy above 4 kHz.

- ``causal``: the whole signal goes through the network at once; every output
  sample depends only on input up to one encoder window later, exactly as in
  streaming use (:mod:`avlab.separate.stream`).
- ``noncausal``: the signal is cut into chunks of ``chunk_s`` with ``overlap_s``
  overlap (the network was trained on 2-s segments; its global layer norm then
  sees the same amount of context); the talker order of each chunk is aligned
  with the previous one by correlation over the overlap, and chunks are
  cross-faded.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from avlab._logging import logger
from avlab.errors import AvlabError
from avlab.separate._audio import resample as _resample
from avlab.separate.model import SeparatorConfig, build_network

__all__ = ["SeparateError", "Separator", "shipped_model_dir"]


class SeparateError(AvlabError, RuntimeError):
    """Separation cannot run (missing model, unreadable audio, bad input)."""

    exit_code = 17


def shipped_model_dir() -> Path:
    """Folder of the weights that ship with avlab."""
    return Path(str(resources.files("avlab") / "data" / "separate"))


class Separator:
    """A trained two-talker separation network.

    Parameters
    ----------
    mode : {"causal", "noncausal"}
        Which shipped network.
    model_dir : Path or None
        Folder with ``<mode>.pt`` and ``<mode>.json``; default the shipped one.
    threads : int or None
        Torch intra-op threads (None: leave torch's setting).
    chunk_s, overlap_s : float
        Non-causal chunking, s.
    """

    def __init__(
        self,
        mode: Literal["causal", "noncausal"] = "noncausal",
        model_dir: Path | None = None,
        *,
        threads: int | None = None,
        chunk_s: float = 4.0,
        overlap_s: float = 1.0,
    ) -> None:
        try:
            import torch
        except ImportError as exc:
            raise SeparateError(
                "separation needs PyTorch, which is not installed.", "pip install 'avlab[deep]'"
            ) from exc
        folder = Path(model_dir) if model_dir else shipped_model_dir()
        weights, meta = folder / f"{mode}.pt", folder / f"{mode}.json"
        for f in (weights, meta):
            if not f.is_file():
                raise SeparateError(
                    f"separation model file {f} is missing.",
                    "reinstall avlab, or train one with 'avlab separate train' and pass "
                    "its folder with --model-dir.",
                )
        try:
            info: dict[str, Any] = json.loads(meta.read_text())
            self.config = SeparatorConfig.model_validate(info["config"])
        except (OSError, ValueError, KeyError) as exc:
            raise SeparateError(
                f"{meta}: not a separation model description ({exc}).",
                "use the .json written by 'avlab separate train'.",
            ) from exc
        if self.config.mode != mode:
            raise SeparateError(
                f"{meta} describes a {self.config.mode} network, not {mode}.",
                f"rename the files to {self.config.mode}.pt/.json.",
            )
        if not 0 < overlap_s < chunk_s:
            raise SeparateError(
                f"overlap_s={overlap_s} must be between 0 and chunk_s={chunk_s}.",
                "use e.g. chunk_s=4, overlap_s=1.",
            )
        self.info = info
        self.mode = mode
        self.weights_path = weights
        self.net = build_network(self.config)
        try:
            self.net.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
        except Exception as exc:
            raise SeparateError(
                f"{weights}: cannot load the weights ({exc}).",
                "the .pt must match its .json; retrain or reinstall.",
            ) from exc
        self.net.eval()
        if threads:
            torch.set_num_threads(threads)
        self.chunk_s, self.overlap_s = chunk_s, overlap_s
        self._torch = torch

    @property
    def srate(self) -> int:
        """Rate the network works at, Hz."""
        return self.config.srate

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            y = self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None])
        return y[0].numpy().astype(np.float64)

    def separate_native(self, x: np.ndarray) -> np.ndarray:
        """Separate a mono signal already at :attr:`srate`.

        Parameters
        ----------
        x : ndarray, shape (n,)

        Returns
        -------
        talkers : ndarray, shape (n_src, n)
        """
        x = np.asarray(x, dtype=np.float64)
        peak = float(np.abs(x).max()) if x.size else 0.0
        if peak == 0.0:
            return np.zeros((self.config.n_src, x.size))
        scale = 0.25 / peak
        x = x * scale
        if self.mode == "causal" or x.size <= self.chunk_s * self.srate:
            return self._run(x) / scale
        n, c = x.size, int(self.chunk_s * self.srate)
        ov = int(self.overlap_s * self.srate)
        step = c - ov
        out = np.zeros((self.config.n_src, n))
        fade = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        prev_tail: np.ndarray | None = None
        for start in range(0, n, step):
            seg = self._run(x[start : start + c])
            m = seg.shape[1]
            if prev_tail is not None:
                k = min(ov, m)
                a, b = prev_tail[:, :k], seg[:, :k]
                # normalised correlation of each talker with its continuation; silence
                # (both near zero) keeps the order
                norm = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1)) + 1e-12
                nsw = np.sqrt(np.sum(a * a, axis=1) * np.sum(b[::-1] ** 2, axis=1)) + 1e-12
                keep = float(np.sum(np.sum(a * b, axis=1) / norm))
                swap = float(np.sum(np.sum(a * b[::-1], axis=1) / nsw))
                if swap > keep:
                    seg = seg[::-1]
                w = fade[:k] if k == ov else np.linspace(0, 1, k)
                out[:, start : start + k] *= 1 - w
                out[:, start : start + k] += w * seg[:, :k]
                out[:, start + k : start + m] = seg[:, k:]
            else:
                out[:, start : start + m] = seg
            prev_tail = seg[:, step:] if m > step else None
            if start + c >= n:
                break
        return out / scale

    def separate(self, audio: np.ndarray, srate: int) -> np.ndarray:
        """Separate a mono recording at any rate.

        Parameters
        ----------
        audio : ndarray, shape (n,)
            The mixture (one microphone channel).
        srate : int
            Its rate, Hz.

        Returns
        -------
        talkers : ndarray, shape (n_src, n)
            At ``srate`` (band-limited to half the network rate).
        """
        audio = np.asarray(audio, dtype=np.float64)
        if audio.ndim != 1:
            raise SeparateError(
                f"separate() takes one channel; got shape {audio.shape}.",
                "pick a microphone channel first.",
            )
        if not np.all(np.isfinite(audio)):
            raise SeparateError(
                "the audio contains NaN or infinite samples.",
                "check the recording; replace the bad samples by zeros.",
            )
        y = self.separate_native(_resample(audio, srate, self.srate))
        y = _resample(y, self.srate, srate)
        if y.shape[1] < audio.size:
            y = np.pad(y, ((0, 0), (0, audio.size - y.shape[1])))
        logger.debug("separated %.1f s with the %s network", audio.size / srate, self.mode)
        return y[:, : audio.size]
