"""The separation network: a small Conv-TasNet (Luo & Mesgarani 2019) in PyTorch.

A learned encoder (1-D convolution, window ``kernel`` samples, hop ``kernel/2``)
turns the waveform into a non-negative representation; a temporal convolutional
network (``repeats`` stacks of ``blocks`` dilated depthwise-separable blocks)
estimates one mask per talker; a transposed convolution turns each masked
representation back into a waveform.

Two modes share the architecture:

- ``causal``: every convolution sees only the past and the normalisation is a
  per-frame layer norm over channels (no statistics over time), so the network
  runs sample-block by sample-block. Its *algorithmic latency* is one encoder
  window (``kernel / srate``: 4 ms at the shipped 32 samples and 8 kHz); a
  streaming deployment adds its block length (:mod:`avlab.separate.stream`).
- ``noncausal``: centred convolutions and a global layer norm over the whole
  signal (offline analysis of recorded sessions).

PyTorch is imported only here and in the modules that train or run the network,
so ``import avlab.separate`` works without it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SeparatorConfig", "build_network"]


class SeparatorConfig(BaseModel):
    """Architecture of a separation network (saved beside its weights).

    Attributes
    ----------
    mode : {"causal", "noncausal"}
    srate : int
        Sampling rate the network works at, Hz.
    n_src : int
        Talkers separated.
    n_filters : int
        Encoder basis functions (N).
    kernel : int
        Encoder window, samples (L); the hop is ``kernel // 2``.
    bottleneck : int
        Channels between TCN blocks (B).
    hidden : int
        Channels inside a TCN block (H).
    blocks : int
        Dilated blocks per stack (X); dilations 1, 2, ..., 2**(X-1).
    repeats : int
        Stacks (R).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["causal", "noncausal"] = "causal"
    srate: int = Field(default=8000, gt=0)
    n_src: int = Field(default=2, ge=2)
    n_filters: int = Field(default=128, gt=0)
    kernel: int = Field(default=32, ge=2)
    bottleneck: int = Field(default=64, gt=0)
    hidden: int = Field(default=128, gt=0)
    blocks: int = Field(default=7, ge=1)
    repeats: int = Field(default=2, ge=1)

    @property
    def hop(self) -> int:
        """Encoder hop, samples."""
        return self.kernel // 2

    @property
    def latency_s(self) -> float:
        """Algorithmic latency of the causal network (one encoder window), s."""
        return self.kernel / self.srate

    @property
    def receptive_field_s(self) -> float:
        """Span of input one output frame depends on, s."""
        frames = 1 + self.repeats * sum(2 * 2**x for x in range(self.blocks))
        return (frames - 1) * self.hop / self.srate + self.kernel / self.srate


def build_network(config: SeparatorConfig) -> Any:
    """Return an untrained ``torch.nn.Module`` for ``config``.

    The module maps a mixture of shape ``(batch, n_samples)`` to separated
    talkers of shape ``(batch, n_src, n_samples)``; ``n_samples`` may be any
    length (it is padded to whole hops inside).
    """
    import torch
    from torch import nn

    causal = config.mode == "causal"

    class _FrameNorm(nn.Module):
        """Layer norm over channels, per frame (causal: no time statistics)."""

        def __init__(self, ch: int) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(ch)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)

    class _GlobalNorm(nn.Module):
        """Global layer norm over channels and time (non-causal)."""

        def __init__(self, ch: int) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(1, ch, 1))
            self.beta = nn.Parameter(torch.zeros(1, ch, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=(1, 2), keepdim=True)
            var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
            return self.gamma * (x - mean) / torch.sqrt(var + 1e-8) + self.beta

    norm = _FrameNorm if causal else _GlobalNorm

    class _Block(nn.Module):
        def __init__(self, dilation: int) -> None:
            super().__init__()
            b, h = config.bottleneck, config.hidden
            self.pad = (2 * dilation, 0) if causal else (dilation, dilation)
            self.inp = nn.Conv1d(b, h, 1)
            self.act1, self.norm1 = nn.PReLU(), norm(h)
            self.dw = nn.Conv1d(h, h, 3, dilation=dilation, groups=h)
            self.act2, self.norm2 = nn.PReLU(), norm(h)
            self.res = nn.Conv1d(h, b, 1)
            self.skip = nn.Conv1d(h, b, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.norm1(self.act1(self.inp(x)))
            y = self.dw(nn.functional.pad(y, self.pad))
            y = self.norm2(self.act2(y))
            return x + self.res(y), self.skip(y)

    class ConvTasNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = config
            self.config = c
            self.encoder = nn.Conv1d(1, c.n_filters, c.kernel, stride=c.hop, bias=False)
            self.in_norm = norm(c.n_filters)
            self.in_conv = nn.Conv1d(c.n_filters, c.bottleneck, 1)
            self.tcn = nn.ModuleList(
                _Block(2**x) for _ in range(c.repeats) for x in range(c.blocks)
            )
            self.mask = nn.Sequential(nn.PReLU(), nn.Conv1d(c.bottleneck, c.n_src * c.n_filters, 1))
            self.decoder = nn.ConvTranspose1d(c.n_filters, 1, c.kernel, stride=c.hop, bias=False)

        def forward(self, mix: torch.Tensor) -> torch.Tensor:
            c = self.config
            n = mix.shape[-1]
            frames = max(1, -(-(n - c.kernel) // c.hop) + 1) if n > c.kernel else 1
            total = (frames - 1) * c.hop + c.kernel
            x = nn.functional.pad(mix.unsqueeze(1), (0, total - n))
            w = torch.relu(self.encoder(x))  # (batch, N, frames)
            y = self.in_conv(self.in_norm(w))
            skips = torch.zeros_like(y)
            for block in self.tcn:
                y, s = block(y)
                skips = skips + s
            m = torch.sigmoid(self.mask(skips)).view(w.shape[0], c.n_src, c.n_filters, -1)
            masked = (m * w.unsqueeze(1)).view(w.shape[0] * c.n_src, c.n_filters, -1)
            out = self.decoder(masked).view(w.shape[0], c.n_src, -1)
            return out[..., :n]

    return ConvTasNet()
