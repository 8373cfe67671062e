"""Streaming separation: block-by-block output equals the offline causal forward."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from avlab.separate.inference import SeparateError, Separator
from avlab.separate.model import SeparatorConfig, build_network
from avlab.separate.stream import (
    StreamingSeparator,
    StreamStats,
    measure_offline,
    measure_streaming,
)

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
HOP = 16  # the shipped causal network: kernel 32 samples at 8 kHz


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def causal() -> Separator:
    return Separator("causal")


def _noise(seconds: float, srate: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (0.1 * rng.standard_normal(round(seconds * srate))).astype(np.float32)


def _speech(block: int) -> np.ndarray:
    x, srate = sf.read(SPEECH / "spk1_snt1.wav", dtype="float64")
    assert srate == 16000
    x = resample_poly(x, 1, 2).astype(np.float32)  # 8 kHz, the network's rate
    return x[: x.size // block * block]  # a whole number of blocks (of every size tested)


def _offline(net: Any, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(x)[None])[0].numpy()


def _stream(sep: StreamingSeparator, x: np.ndarray) -> np.ndarray:
    """Whole stream (blocks, then flush), shifted back by the delay."""
    blocks = [sep.process(x[i : i + sep.block]) for i in range(0, x.size, sep.block)]
    assert all(b.shape == (sep.config.n_src, sep.block) for b in blocks)
    return np.concatenate([*blocks, sep.flush()], axis=1)[:, sep.delay :]


def _rel_err(streamed: np.ndarray, offline: np.ndarray) -> float:
    assert streamed.shape == offline.shape
    return float(np.abs(streamed - offline).max() / np.abs(offline).max())


@pytest.mark.parametrize("engine", ["onnx", "fused"])
@pytest.mark.parametrize("block", [HOP, 2 * HOP, 10 * HOP])
@pytest.mark.parametrize("signal", ["noise", "speech"])
def test_stream_equals_offline(causal: Separator, block: int, signal: str, engine: str) -> None:
    x = _noise(2.0) if signal == "noise" else _speech(10 * HOP)
    sep = StreamingSeparator(causal.net, causal.config, block, engine=engine)  # type: ignore[arg-type]
    assert sep.delay == HOP and sep.engine == engine
    ref = _offline(causal.net, x)
    out = _stream(sep, x)
    err = _rel_err(out, ref)
    # measured: 2.4e-7 .. 4.6e-7 of the output peak (float32 rounding of a different sum order)
    assert err < 1e-4, f"{signal}, block {block}: max error {err:.2e} of the peak"
    # the first `delay` samples of the stream are zeros: nothing is final before one hop
    first = sep.process(x[:block])
    assert np.all(first[:, : sep.delay] == 0.0)


@pytest.mark.parametrize(("block", "seconds"), [(HOP, 0.5), (10 * HOP, 2.0)])
def test_modules_engine_equals_offline(causal: Separator, block: int, seconds: float) -> None:
    """The reference engine calls the network's own submodules on every block."""
    x = _noise(seconds)
    sep = StreamingSeparator(causal.net, causal.config, block, engine="modules")
    err = _rel_err(_stream(sep, x), _offline(causal.net, x))
    assert err < 1e-4, f"block {block}: max error {err:.2e} of the peak"


@pytest.mark.parametrize("kernel", [8, 9])
def test_other_kernels(kernel: int) -> None:
    """Even and odd windows (hop kernel // 2): the delay is a whole number of hops."""
    torch.manual_seed(0)
    cfg = SeparatorConfig(kernel=kernel, n_filters=16, bottleneck=8, hidden=16, blocks=3, repeats=2)
    net = build_network(cfg).eval()
    hop = cfg.hop
    x = _noise(0.3)[: 2400 // (3 * hop) * 3 * hop]
    ref = _offline(net, x)
    # one hop per block: shorter than the window, so the first calls see no whole frame
    for engine, block in itertools.product(("onnx", "fused", "modules"), (hop, 3 * hop)):
        sep = StreamingSeparator(net, cfg, block, engine=engine)  # type: ignore[arg-type]
        assert sep.delay == math.ceil((kernel - hop) / hop) * hop
        out = np.concatenate(
            [sep.process(x[i : i + sep.block]) for i in range(0, x.size, sep.block)], axis=1
        )
        n = x.size - sep.delay  # final offline samples: not touched by its end padding
        err = _rel_err(out[:, sep.delay :], ref[:, :n])
        assert err < 1e-4, f"kernel {kernel}, {engine}, block {block}: error {err:.2e} of the peak"


def test_reset_repeats_the_first_pass(causal: Separator) -> None:
    x = _noise(0.512)
    sep = StreamingSeparator(causal.net, causal.config, 4 * HOP)
    first = [sep.process(x[i : i + sep.block]) for i in range(0, x.size, sep.block)]
    sep.reset()
    second = [
        sep.process(torch.from_numpy(x[i : i + sep.block])) for i in range(0, x.size, sep.block)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # without reset, the past (depthwise histories, decoder tail) changes the output
    third = sep.process(x[: sep.block])
    assert not np.array_equal(third, first[0])


@pytest.mark.parametrize("block", [24, 0, -32, 33])
def test_block_not_a_multiple_of_the_hop(causal: Separator, block: int) -> None:
    with pytest.raises(SeparateError, match=rf"block = {block} samples .* hop \(16 samples\)"):
        StreamingSeparator(causal.net, causal.config, block)


def test_bad_inputs(causal: Separator) -> None:
    with pytest.raises(SeparateError, match="block must be an integer"):
        StreamingSeparator(causal.net, causal.config, 32.0)  # type: ignore[arg-type]
    sep = StreamingSeparator(causal.net, causal.config)
    with pytest.raises(SeparateError, match=r"shape \(31,\); block is 32"):
        sep.process(np.zeros(31))
    noncausal = SeparatorConfig(mode="noncausal", kernel=32)
    with pytest.raises(SeparateError, match="causal network; config.mode is 'noncausal'"):
        StreamingSeparator(build_network(noncausal), noncausal)


def test_default_engine_is_onnx_and_needs_onnxruntime(
    causal: Separator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert StreamingSeparator(causal.net, causal.config).engine == "onnx"
    import avlab.separate.onnx_step as onnx_step

    monkeypatch.setattr(onnx_step, "onnx_available", lambda: False)
    with pytest.raises(SeparateError, match="needs the onnx and onnxruntime packages"):
        StreamingSeparator(causal.net, causal.config)
    # the torch engines do not need it
    assert StreamingSeparator(causal.net, causal.config, engine="fused").engine == "fused"
    with pytest.raises(SeparateError, match="engine 'tflite' is unknown"):
        StreamingSeparator(causal.net, causal.config, engine="tflite")  # type: ignore[arg-type]


def test_onnx_step_refuses_the_noncausal_network() -> None:
    from avlab.separate.onnx_step import build_step_model

    noncausal = SeparatorConfig(mode="noncausal", kernel=32)
    with pytest.raises(SeparateError, match="ONNX streaming step needs the causal network"):
        build_step_model(build_network(noncausal), noncausal, 2)


def test_latency(causal: Separator) -> None:
    sep = StreamingSeparator(causal.net, causal.config)  # default: two hops
    assert sep.block == 32
    assert sep.algorithmic_latency_s == pytest.approx(0.004)  # kernel 32 at 8 kHz
    assert sep.latency_s == pytest.approx(0.008)  # + one 4-ms block: within the 10-ms goal
    assert StreamingSeparator(causal.net, causal.config, 10 * HOP).latency_s == pytest.approx(0.024)


def test_measurements_are_finite(causal: Separator) -> None:
    sep = StreamingSeparator(causal.net, causal.config, 2 * HOP)
    stats = measure_streaming(sep, seconds=0.4, threads=1)
    assert isinstance(stats, StreamStats)
    assert stats.n_blocks == 100 and stats.threads == 1 and stats.engine == "onnx"
    assert stats.block_ms == pytest.approx(4.0)
    assert stats.algorithmic_latency_ms == pytest.approx(4.0)
    assert stats.total_latency_ms == pytest.approx(8.0)
    times = [stats.rtf, stats.p50_ms, stats.p99_ms, stats.max_ms]
    assert all(math.isfinite(v) and v > 0 for v in times)
    assert stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert 0 <= stats.deadline_misses <= stats.n_blocks
    assert torch.get_num_threads() == 1  # restored
    rtf = measure_offline(causal.net, seconds=1.0, threads=1)
    assert math.isfinite(rtf) and rtf > 0
    with pytest.raises(SeparateError, match="threads must be a positive integer"):
        measure_streaming(sep, seconds=0.1, threads=0)
