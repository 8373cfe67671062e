"""Streaming (block-by-block) inference of the causal separation network.

:class:`StreamingSeparator` feeds the causal Conv-TasNet of
:mod:`avlab.separate.model` one block of ``block`` samples at a time (a hearing
aid's audio callback) and returns the talkers for that block. It keeps, between
calls, the input samples not yet covered by a whole encoder frame, the last
``2 * dilation`` frames of every depthwise convolution's input and the
overlap-add tail of the decoder, so the concatenated stream equals the offline
``net(x)`` delayed by :attr:`StreamingSeparator.delay` samples (to float32
rounding).

Timing (``srate`` Hz, ``kernel`` L and hop ``L // 2`` samples, block B samples):

- Output alignment: the block returned by the k-th call (k = 0, 1, ...) is
  offline output samples ``[k*B - D, (k+1)*B - D)`` with ``D = delay`` =
  ``ceil((L - hop) / hop) * hop`` (= L - hop = 16 samples, 2 ms, for the shipped
  L = 32); the first ``D`` samples of the stream are zeros. An output sample is
  final once the last encoder frame covering it is complete, so it lags its
  input sample by at most ``L - 1`` samples: the *algorithmic latency* is taken,
  as in Luo & Mesgarani (2019), as one encoder window, ``L / srate``
  (:attr:`SeparatorConfig.latency_s`).
- Block buffering: a sample waits up to ``B`` samples for its block to fill.
- :attr:`StreamingSeparator.latency_s` = ``(L + B) / srate``, the bound quoted
  for a deployment, compute time excluded (a real-time system adds up to one
  block of compute, see :func:`measure_streaming`). The exact worst case of
  this implementation is ``(B + D - 1) / srate``, which is below the bound.

Three engines compute the same thing. ``"modules"`` calls the network's own
submodules on each block (channel-major, as in training): the reference, about
6 ms per 4-ms block on a loaded 2-core machine. ``"fused"`` runs the same
arithmetic frame-major, with functional calls on views of the network's
parameters and a few values derived from them once at construction (see
``_prepare_fused``; after changing the weights, build a new separator), writes
the depthwise histories in place, and is about ten times faster: at 4-ms
blocks, per-call overhead of ~150 small tensor operations dominates, not
arithmetic. ``"onnx"`` (default) runs the fused arithmetic as one ONNX graph in
ONNX Runtime (:mod:`avlab.separate.onnx_step`), one call into C++ per block,
about three times faster again; it is how the network would be deployed.

Threads: run streaming with one intra-op thread (the ``"onnx"`` engine's
sessions use one unless :func:`measure_streaming` is told otherwise). The
per-block matrices are tiny; with two threads, matrix products and layer norms
pay a parallel region each (several times slower), and on a busy machine a
block can wait hundreds of ms for the second thread to be scheduled.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.separate.inference import SeparateError
from avlab.separate.model import SeparatorConfig

__all__ = [
    "StreamStats",
    "block_samples",
    "StreamingSeparator",
    "measure_offline",
    "measure_streaming",
    "stream_timed",
]


class StreamStats(BaseModel):
    """Latency and compute cost of streaming separation on this CPU.

    Attributes
    ----------
    block_ms : float
        Block length, ms.
    algorithmic_latency_ms : float
        One encoder window, ms.
    total_latency_ms : float
        Algorithmic latency plus block buffering, ms (compute excluded).
    rtf : float
        Real-time factor: total compute time / audio duration.
    p50_ms, p99_ms, max_ms : float
        Median, 99th percentile and maximum compute time of one block, ms.
    deadline_misses : int
        Blocks whose compute time exceeded the block duration.
    n_blocks : int
        Blocks timed.
    threads : int
        Intra-op threads used (PyTorch's, or ONNX Runtime's for ``"onnx"``).
    engine : str
        Engine of the :class:`StreamingSeparator`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    block_ms: float
    algorithmic_latency_ms: float
    total_latency_ms: float
    rtf: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    deadline_misses: int
    n_blocks: int
    threads: int
    engine: str


class StreamingSeparator:
    """Block-by-block separation with the causal network.

    Parameters
    ----------
    net : torch.nn.Module
        A causal network from :func:`avlab.separate.model.build_network`
        (e.g. ``Separator("causal").net``).
    config : SeparatorConfig
        Its architecture (``mode`` must be ``"causal"``).
    block : int or None
        Samples per :meth:`process` call at ``config.srate``; a positive
        multiple of the hop ``config.kernel // 2``. Default: two hops (4 ms for
        the shipped network at 8 kHz).
    engine : {"onnx", "fused", "modules"}
        How a block is computed (see the module docstring); all agree with
        the offline forward.
    """

    def __init__(
        self,
        net: Any,
        config: SeparatorConfig,
        block: int | None = None,
        *,
        engine: Literal["onnx", "fused", "modules"] = "onnx",
    ) -> None:
        import torch

        if config.mode != "causal":
            raise SeparateError(
                f"streaming needs the causal network; config.mode is {config.mode!r}.",
                "load it with Separator('causal').",
            )
        hop = config.hop
        if block is None:
            block = 2 * hop
        if isinstance(block, bool) or not isinstance(block, int | np.integer):
            raise SeparateError(
                f"block must be an integer number of samples; got {block!r}.",
                f"pass a multiple of the hop ({hop} samples).",
            )
        if block <= 0 or block % hop:
            raise SeparateError(
                f"block = {block} samples is not a positive multiple of the hop ({hop} samples).",
                f"use e.g. block={2 * hop} ({2 * hop / config.srate * 1e3:g} ms).",
            )
        if engine not in ("onnx", "fused", "modules"):
            raise SeparateError(
                f"engine {engine!r} is unknown.", "use 'onnx', 'fused' or 'modules'."
            )
        self._torch = torch
        self.net, self.config, self.block, self.engine = net, config, int(block), engine
        self._dims = (config.kernel, hop, config.n_src, config.n_filters, config.bottleneck,
                      config.hidden)  # fmt: skip
        self._pieces = -(-config.kernel // hop)  # hops spanned by one encoder window
        self._pads = [int(blk.pad[0]) for blk in net.tcn]
        if engine == "fused":
            self._prepare_fused()
        elif engine == "onnx":
            from avlab.separate.onnx_step import OnnxStep

            self._onnx = OnnxStep(net, config)
            # the first call sees fewer frames than the rest: build both sessions now
            self._onnx.prepare(*{n for n in self.step_frames if n > 0})
        self.reset()

    # ------------------------------------------------------------------ timing
    @property
    def delay(self) -> int:
        """Samples by which the stream lags the offline output (D)."""
        return (self._pieces - 1) * self.config.hop

    @property
    def step_frames(self) -> tuple[int, int]:
        """Encoder frames computed by the first call and by every later one.

        The first is ``(block - kernel) // hop + 1`` and may be 0 or less (a block
        shorter than the kernel: the first call computes nothing); later calls
        compute ``block // hop``.
        """
        hop = self.config.hop
        return (self.block - self.config.kernel) // hop + 1, self.block // hop

    @property
    def pieces(self) -> int:
        """Hops spanned by one decoded window (overlap-added over that many hops)."""
        return self._pieces

    @property
    def state_rows(self) -> list[int]:
        """Depthwise-history rows (past frames) kept for each TCN block, in order."""
        return list(self._pads)

    @property
    def block_s(self) -> float:
        """Block duration, s."""
        return self.block / self.config.srate

    @property
    def algorithmic_latency_s(self) -> float:
        """One encoder window, ``kernel / srate``, s."""
        return self.config.kernel / self.config.srate

    @property
    def latency_s(self) -> float:
        """Algorithmic latency plus block buffering, ``(kernel + block) / srate``, s."""
        return self.algorithmic_latency_s + self.block_s

    # ------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the past: the next call starts a new stream."""
        torch, c = self._torch, self.config
        self._pending = np.zeros(0, np.float32)  # input not yet in a whole frame
        self._out = np.zeros((c.n_src, self.delay), np.float32)  # final, not yet returned
        self._tail = np.zeros((c.n_src, (self._pieces - 1) * c.hop), np.float32)  # partial sums
        with torch.inference_mode():
            if self.engine == "fused":
                for h in self._dw:
                    h.zero_()
                self._pos = self._slack
            elif self.engine == "onnx":
                self._onnx.reset()
            else:
                self._dw = [torch.zeros(1, c.hidden, p) for p in self._pads]

    def process(self, x_block: np.ndarray | Any) -> np.ndarray:
        """Separate the next block of the mixture.

        Parameters
        ----------
        x_block : ndarray or torch.Tensor, shape (block,)
            The next ``block`` mixture samples at ``config.srate`` (any scale:
            the network is scale-equivariant up to its norms' epsilon).

        Returns
        -------
        talkers : ndarray of float32, shape (n_src, block)
            Offline output samples ``[k*block - delay, (k+1)*block - delay)``
            for the k-th call since :meth:`reset`.
        """
        if hasattr(x_block, "detach"):
            x_block = x_block.detach().cpu().numpy()
        x = np.asarray(x_block, dtype=np.float32)
        if x.shape != (self.block,):
            raise SeparateError(
                f"process() got a block of shape {x.shape}; block is {self.block}.",
                f"pass exactly {self.block} mono samples per call.",
            )
        kernel, hop, n_src = self._dims[:3]
        buf = np.concatenate((self._pending, x))
        n_frames = (buf.size - kernel) // hop + 1 if buf.size >= kernel else 0
        if n_frames:
            # decoded windows, (F, n_src, pieces, hop)
            if self.engine == "onnx":  # no torch call at all
                parts = self._onnx(buf, n_frames)
            else:
                step = self._step_fused if self.engine == "fused" else self._step_modules
                with self._torch.inference_mode():
                    parts = step(buf[: (n_frames - 1) * hop + kernel], n_frames)
            # overlap-add hop by hop onto the partial sums left by the previous call
            acc = np.zeros((n_src, n_frames + self._pieces - 1, hop), np.float32)
            acc[:, : self._pieces - 1] = self._tail.reshape(n_src, -1, hop)
            for j in range(self._pieces):
                acc[:, j : j + n_frames] += parts[:, :, j].transpose(1, 0, 2)
            acc = acc.reshape(n_src, -1)
            self._pending = buf[n_frames * hop :]
            self._tail = acc[:, n_frames * hop :]
            out = np.concatenate((self._out, acc[:, : n_frames * hop]), axis=1)
        else:
            self._pending, out = buf, self._out
        self._out = out[:, self.block :]
        return np.ascontiguousarray(out[:, : self.block])

    def flush(self) -> np.ndarray:
        """Return what is still pending at the end of a stream, then :meth:`reset`.

        Returns
        -------
        talkers : ndarray of float32, shape (n_src, delay)
            The next ``delay`` samples from the frames seen so far, i.e. as if
            the mixture ended with zeros: for an even kernel and a signal of a
            whole number of blocks, exactly the last ``delay`` samples of the
            offline output.
        """
        pending = np.concatenate((self._out, self._tail), axis=1)[:, : self.delay]
        self.reset()
        return np.ascontiguousarray(pending)

    # ---------------------------------------------------------------- engines
    def _step_modules(self, buf: np.ndarray, n_frames: int) -> np.ndarray:
        """Frames of ``buf`` through the network's own submodules."""
        torch, net, c = self._torch, self.net, self.config
        w = torch.relu(net.encoder(torch.from_numpy(buf).view(1, 1, -1)))  # (1, N, F)
        y = net.in_conv(net.in_norm(w))
        skips = torch.zeros_like(y)
        for i, blk in enumerate(net.tcn):
            h = blk.norm1(blk.act1(blk.inp(y)))
            h = torch.cat((self._dw[i], h), dim=2)
            self._dw[i] = h[..., h.shape[2] - self._pads[i] :]
            h = blk.norm2(blk.act2(blk.dw(h)))
            y = y + blk.res(h)
            skips = skips + blk.skip(h)
        m = torch.sigmoid(net.mask(skips)).view(c.n_src, c.n_filters, n_frames)
        # one decoded window per frame: the transposed conv on a single frame each
        frames = (m * w).permute(2, 0, 1).reshape(n_frames * c.n_src, c.n_filters, 1)
        win = net.decoder(frames).view(n_frames, c.n_src, c.kernel)
        win = torch.nn.functional.pad(win, (0, self._pieces * c.hop - c.kernel))
        return win.view(n_frames, c.n_src, self._pieces, c.hop).numpy()

    def _prepare_fused(self) -> None:
        """Collect views of the parameters, and the few values derived from them.

        Derived (exact up to float32 rounding): the PReLU slopes as floats; a third
        of each depthwise bias (added once per tap); the
        residual and skip 1x1 weights of each block concatenated; the residual
        biases folded into the next blocks' input biases (``b_in + W_in @ sum of
        earlier res biases``); the skip biases summed into an extended
        ``in_conv`` that writes the residual path and the skip accumulator at once.
        """
        torch, net, c = self._torch, self.net, self.config
        b = c.bottleneck
        with torch.inference_mode():
            dec = net.decoder.weight.reshape(c.n_filters, c.kernel)
            self._dec = torch.nn.functional.pad(dec, (0, self._pieces * c.hop - c.kernel))
            n = net.in_norm.norm
            in_w = torch.cat((net.in_conv.weight[..., 0], torch.zeros(b, c.n_filters)))
            in_b = torch.cat((net.in_conv.bias, sum(blk.skip.bias for blk in net.tcn)))
            self._head = (net.encoder.weight[:, 0].t(), n.normalized_shape, n.weight, n.bias,
                          n.eps, in_w.t(), in_b)  # fmt: skip
            blocks, res_bias = [], torch.zeros(b)
            for blk in net.tcn:
                n1, n2, k = blk.norm1.norm, blk.norm2.norm, blk.dw.weight[:, 0]
                w_in = blk.inp.weight[..., 0]
                rs = torch.cat((blk.res.weight, blk.skip.weight))[..., 0].t()
                blocks.append((
                    w_in.t(), blk.inp.bias + w_in @ res_bias, float(blk.act1.weight),
                    n1.normalized_shape, n1.weight, n1.bias, n1.eps,
                    blk.dw.bias / 3, k.t().unsqueeze(1), float(blk.act2.weight),
                    n2.normalized_shape, n2.weight, n2.bias, n2.eps, rs,
                ))  # fmt: skip
                res_bias = res_bias + blk.res.bias
            self._blocks = blocks
            # depthwise-input histories: rows [pos - 2*dilation, pos) are the past; when
            # full, the last rows move back to the start (every few dozen calls)
            self._slack = max(self._pads)
            rows = self._slack + max(64, 4 * self.block // c.hop)
            self._dw = [torch.zeros(rows, c.hidden) for _ in self._pads]
            self._views: dict[tuple[int, int], list[tuple[Any, Any]]] = {}
            act, conv = net.mask[0], net.mask[1]
            self._mask = (float(act.weight), conv.weight[..., 0].t(), conv.bias)

    def _step_fused(self, buf: np.ndarray, n_frames: int) -> np.ndarray:
        """Run the same arithmetic frame-major (frames, channels), with fewer operations."""
        torch, nf = self._torch, n_frames
        addmm, addcmul, layer_norm = torch.addmm, torch.addcmul, torch.layer_norm
        leaky_relu_ = torch.nn.functional.leaky_relu_
        kernel, hop, n_src, n_filters, b, hidden = self._dims
        hist, pos = self._dw, self._pos
        if pos + nf > hist[0].shape[0]:  # depthwise histories full: keep their last 2*dilation rows
            for i, p in enumerate(self._pads):
                hist[i][self._slack - p : self._slack] = hist[i][pos - p : pos].clone()
            pos = self._slack
        views = self._views.get((pos, nf))
        if views is None:  # where this call writes each history, and its depthwise taps
            views = self._views[pos, nf] = [
                (
                    h[pos : pos + nf],
                    h.as_strided((3, nf, hidden), (d * hidden, hidden, 1), (pos - 2 * d) * hidden),
                )
                for h, d in zip(hist, (p // 2 for p in self._pads), strict=True)
            ]
        enc, shape, g, beta, eps, in_w, in_b = self._head
        w = torch.mm(torch.from_numpy(buf).unfold(0, kernel, hop), enc).relu_()  # (F, N)
        # ys = [residual path without its biases | skip accumulator]
        ys = addmm(in_b, layer_norm(w, shape, g, beta, eps), in_w)  # (F, 2B)
        res = ys[:, :b]
        for (w1, b1, a1, s1, g1, be1, e1, bd, k, a2, s2, g2, be2, e2, rs), (new, taps) in zip(
            self._blocks, views, strict=True
        ):
            new.copy_(layer_norm(leaky_relu_(addmm(b1, res, w1), a1), s1, g1, be1, e1))
            # taps: (3, F, H) view of the history at t - 2d, t - d and t
            z = addcmul(bd, taps, k).sum(0)
            ys.addmm_(layer_norm(leaky_relu_(z, a2), s2, g2, be2, e2), rs)
        self._pos = pos + nf
        a, mw, mb = self._mask
        m = addmm(mb, leaky_relu_(ys[:, b:], a), mw).sigmoid_()
        masked = m.view(nf, n_src, n_filters).mul_(w.unsqueeze(1))
        parts = torch.mm(masked.view(nf * n_src, n_filters), self._dec)
        return parts.view(nf, n_src, self._pieces, hop).numpy()


def block_samples(config: SeparatorConfig, block_ms: float, option: str) -> int:
    """Convert a block of ``block_ms`` to samples for the causal network, checked.

    Parameters
    ----------
    config : SeparatorConfig
        The causal network's architecture.
    block_ms : float
        Block duration, ms: a whole number of the network's hops.
    option : str
        The option's name, for the error message.

    Returns
    -------
    block : int
        Samples per block at ``config.srate``.

    Raises
    ------
    SeparateError
        If ``block_ms`` is not finite and positive or not a whole number of hops.
    """
    hop_ms = config.hop / config.srate * 1e3
    if not (math.isfinite(block_ms) and block_ms > 0):
        raise SeparateError(
            f"{option} must be a positive number of ms; got {block_ms:g}.",
            f"use e.g. {option} {3 * hop_ms:g}.",
        )
    block = round(block_ms * 1e-3 * config.srate)
    if block <= 0 or block % config.hop or abs(block / config.srate * 1e3 - block_ms) > 1e-6:
        raise SeparateError(
            f"{option} {block_ms:g} is not a whole number of the causal network's "
            f"{hop_ms:g}-ms hops.",
            f"use e.g. {option} {3 * hop_ms:g} (latency "
            f"{3 * hop_ms + config.latency_s * 1e3:g} ms).",
        )
    return int(block)


def _timed_threads(threads: int) -> int:
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SeparateError(f"threads must be a positive integer; got {threads!r}.", "pass 1 or 2.")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def measure_streaming(
    sep: StreamingSeparator, seconds: float = 10.0, threads: int = 1, seed: int = 0
) -> StreamStats:
    """Time :meth:`StreamingSeparator.process` on ``seconds`` of noise.

    The separator is reset, warmed up on 50 blocks, reset again, then fed
    ``seconds`` of seeded Gaussian noise (RMS 0.1) block by block; each call is
    timed with :func:`time.perf_counter`. Torch's thread count (and, for the
    ``"onnx"`` engine, ONNX Runtime's) is set to ``threads`` and restored after.

    Parameters
    ----------
    sep : StreamingSeparator
    seconds : float
        Audio duration streamed, s.
    threads : int
        Intra-op threads during the measurement.
    seed : int
        Seed of the noise.

    Returns
    -------
    StreamStats
    """
    import torch

    previous = _timed_threads(threads)
    onnx_threads = sep._onnx.threads if sep.engine == "onnx" else None
    try:
        if onnx_threads is not None:
            sep._onnx.set_threads(threads)
        rng = np.random.default_rng(seed)
        n_blocks = max(1, round(seconds * sep.config.srate / sep.block))
        x = (0.1 * rng.standard_normal((n_blocks, sep.block))).astype(np.float32)
        sep.reset()
        for i in range(min(50, n_blocks)):
            sep.process(x[i])
        sep.reset()
        _, stats = stream_timed(sep, x, threads=threads)
        sep.reset()
    finally:
        torch.set_num_threads(previous)
        if onnx_threads is not None:
            sep._onnx.set_threads(onnx_threads)
    logger.debug("streaming separation: %s", stats)
    return stats


def stream_timed(
    sep: StreamingSeparator, blocks: np.ndarray, threads: int = 1
) -> tuple[list[np.ndarray], StreamStats]:
    """Feed ``blocks`` to :meth:`StreamingSeparator.process`, timing every call.

    Parameters
    ----------
    sep : StreamingSeparator
        Used as it is (not reset before or after).
    blocks : ndarray of float32, shape (n_blocks, sep.block)
        Consecutive mixture blocks at ``sep.config.srate``.
    threads : int
        Intra-op threads in use, recorded in the stats (not set here).

    Returns
    -------
    outputs : list of ndarray, each (n_src, block)
        What each call returned.
    stats : StreamStats
        Latency, real-time factor and per-block compute times.
    """
    times = np.empty(len(blocks))
    outputs = []
    for i, block in enumerate(blocks):
        t0 = time.perf_counter()
        outputs.append(sep.process(block))
        times[i] = time.perf_counter() - t0
    stats = StreamStats(
        block_ms=sep.block_s * 1e3,
        algorithmic_latency_ms=sep.algorithmic_latency_s * 1e3,
        total_latency_ms=sep.latency_s * 1e3,
        rtf=float(times.sum() / (times.size * sep.block_s)),
        p50_ms=float(np.percentile(times, 50) * 1e3),
        p99_ms=float(np.percentile(times, 99) * 1e3),
        max_ms=float(times.max() * 1e3),
        deadline_misses=int(np.sum(times > sep.block_s)),
        n_blocks=int(times.size),
        threads=threads,
        engine=sep.engine,
    )
    return outputs, stats


def measure_offline(net: Any, seconds: float = 10.0, threads: int = 1, seed: int = 0) -> float:
    """Real-time factor of one whole-signal forward of ``net`` on seeded noise.

    Parameters
    ----------
    net : torch.nn.Module
        A network from :func:`avlab.separate.model.build_network`.
    seconds : float
        Signal duration, s (at ``net.config.srate``).
    threads : int
        Torch intra-op threads during the measurement.
    seed : int
        Seed of the noise.

    Returns
    -------
    rtf : float
        Compute time / audio duration (after a warm-up forward on 0.5 s).
    """
    import torch

    srate = net.config.srate
    previous = _timed_threads(threads)
    try:
        rng = np.random.default_rng(seed)
        x = torch.from_numpy((0.1 * rng.standard_normal(round(seconds * srate))).astype(np.float32))
        with torch.inference_mode():
            net(x[: srate // 2][None])
            t0 = time.perf_counter()
            net(x[None])
            elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)
    return elapsed / seconds
