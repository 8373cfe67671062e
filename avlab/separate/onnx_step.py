"""One streaming step of the causal network as an ONNX graph, run by ONNX Runtime.

Why: at hearing-aid block sizes (4-6 ms, 2-3 encoder frames) a step of the
causal Conv-TasNet is ~150 tiny tensor operations; in PyTorch each costs a few
microseconds of Python and dispatcher overhead, which is most of the time
(see :mod:`avlab.separate.stream`). ONNX Runtime runs the whole step as one
call into C++, the way a deployed model would run, at about a third of the
cost. The graph is built here, directly from the trained weights with
:mod:`onnx.helper` (no exporter, no file), so it always matches the loaded
network; :class:`OnnxStep` keeps the depthwise-convolution histories between
calls.

The arithmetic is that of ``StreamingSeparator``'s ``"fused"`` engine,
frame-major ``(frames, channels)``:

- encoder: ``relu(frames @ W_enc)``, ``frames`` of shape (F, kernel);
- a per-frame layer norm and one ``Gemm`` that writes both the residual path
  and the skip accumulator (``ys``, (F, 2 * bottleneck)); residual biases are
  folded into the next blocks' input biases, skip biases into ``in_conv``'s;
- per TCN block: ``Gemm`` + PReLU + layer norm, the history concatenated in
  front, the three dilated taps gathered and weighted (depthwise conv),
  PReLU + layer norm, and one ``Gemm`` adding into ``ys``;
- mask: PReLU, ``Gemm``, sigmoid; masked encoder output through the decoder
  basis, giving each frame's decoded window (overlap-added by the caller).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avlab.separate.inference import SeparateError
from avlab.separate.model import SeparatorConfig

__all__ = ["OnnxStep", "build_step_model", "onnx_available"]

OPSET = 17  # LayerNormalization
_IR_VERSION = 9  # read by every ONNX Runtime since 1.15


def onnx_available() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except (ImportError, OSError):  # OSError: a broken onnxruntime shared library
        return False
    return True


def _np(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


class _Graph:
    """Collects nodes and constants of one graph."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(self, name: str, *values: int) -> str:
        return self.const(name, np.array(values, np.int64))

    def op(self, kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def prelu_norm(self, x: str, act: Any, norm: Any, name: str) -> str:
        """Add a single-slope PReLU (as LeakyRelu), then a layer norm over channels."""
        x = self.op("LeakyRelu", [x], f"{name}_act", alpha=float(act.weight.detach()))
        return self.norm(x, norm, name)

    def norm(self, x: str, norm: Any, name: str) -> str:
        """Add ``torch.nn.LayerNorm`` over the last axis (channels)."""
        scale, shift = (
            self.const(f"{name}_ln_scale", _np(norm.weight)),
            self.const(f"{name}_ln_shift", _np(norm.bias)),
        )
        return self.op("LayerNormalization", [x, scale, shift], f"{name}_norm", axis=-1,
                       epsilon=float(norm.eps))  # fmt: skip


def build_step_model(net: Any, config: SeparatorConfig, n_frames: int) -> bytes:
    """Serialize one streaming step of a causal network as an ONNX model.

    Parameters
    ----------
    net : torch.nn.Module
        A causal network from :func:`avlab.separate.model.build_network`.
    config : SeparatorConfig
        Its architecture.
    n_frames : int
        Encoder frames per step (F); the gather indices of the dilated taps
        depend on it, so each F gets its own model.

    Returns
    -------
    model : bytes
        Inputs ``frames`` (F, kernel) and ``state`` (sum of 2 * dilation over
        the blocks, hidden): each block's depthwise inputs of the previous
        2 * dilation frames, oldest first, blocks stacked in order. Outputs
        ``parts`` (F, n_src * pieces * hop), each frame's decoded window padded
        to whole hops, and ``state_out``, the state for the next step.
    """
    from onnx import TensorProto, checker, helper

    if config.mode != "causal":
        raise SeparateError(
            f"an ONNX streaming step needs the causal network; config.mode is {config.mode!r}.",
            "load it with Separator('causal').",
        )
    nf = int(n_frames)
    kern, hop, n_filt, bott, hid, n_src = (
        config.kernel,
        config.hop,
        config.n_filters,
        config.bottleneck,
        config.hidden,
        config.n_src,
    )
    pieces = -(-kern // hop)
    pads = [int(blk.pad[0]) for blk in net.tcn]
    g = _Graph()
    f32 = TensorProto.FLOAT
    rows = sum(pads)
    inputs = [
        helper.make_tensor_value_info("frames", f32, [nf, kern]),
        helper.make_tensor_value_info("state", f32, [rows, hid]),
    ]
    outputs = [
        helper.make_tensor_value_info("parts", f32, [nf, n_src * pieces * hop]),
        helper.make_tensor_value_info("state_out", f32, [rows, hid]),
    ]
    # one state tensor (every block's history, stacked) instead of one per block:
    # fewer arrays crossing into the runtime per call
    starts = np.concatenate([[0], np.cumsum(pads)]).astype(int)

    w = g.op("MatMul", ["frames", g.const("enc", _np(net.encoder.weight[:, 0]).T)], "enc_out")
    w = g.op("Relu", [w], "w")
    x = g.norm(w, net.in_norm.norm, "in")
    # ys = [residual path | skip accumulator], (F, 2B); every skip bias enters here once
    in_w = np.concatenate([_np(net.in_conv.weight[..., 0]), np.zeros((bott, n_filt), np.float32)])
    in_b = np.concatenate([_np(net.in_conv.bias), sum(_np(b.skip.bias) for b in net.tcn)])
    ys = g.op("Gemm", [x, g.const("in_w", in_w.T), g.const("in_b", in_b)], "ys0")
    res_bias = np.zeros(bott, np.float32)  # residual biases not yet added to ys
    for i, (blk, p) in enumerate(zip(net.tcn, pads, strict=True)):
        d = p // 2
        w_in = _np(blk.inp.weight[..., 0])  # (H, B)
        w1 = np.concatenate([w_in.T, np.zeros((bott, hid), np.float32)])  # reads the residual half
        h = g.op(
            "Gemm",
            [ys, g.const(f"w1_{i}", w1), g.const(f"b1_{i}", _np(blk.inp.bias) + w_in @ res_bias)],
            f"a{i}",
        )
        h = g.prelu_norm(h, blk.act1, blk.norm1.norm, f"a{i}")
        past = g.op(
            "Slice",
            [
                "state",
                g.ints(f"ps{i}", starts[i]),
                g.ints(f"pe{i}", starts[i + 1]),
                g.ints(f"pa{i}", 0),
            ],
            f"h{i}",
        )
        cat = g.op("Concat", [past, h], f"cat{i}", axis=0)  # (2d + F, H)
        g.op(
            "Slice",
            [cat, g.ints(f"s{i}", nf), g.ints(f"e{i}", nf + p), g.ints(f"ax{i}", 0)],
            f"h{i}_out",
        )
        taps = np.stack([np.arange(nf) + j * d for j in range(3)]).astype(np.int64)  # t-2d, t-d, t
        z = g.op("Gather", [cat, g.const(f"taps{i}", taps)], f"z{i}_taps", axis=0)  # (3, F, H)
        k = _np(blk.dw.weight[:, 0]).T[:, None, :]  # (3, 1, H)
        z = g.op("Mul", [z, g.const(f"k{i}", k)], f"z{i}_w")
        z = g.op("ReduceSum", [z, g.ints(f"rax{i}", 0)], f"z{i}_sum", keepdims=0)
        z = g.op("Add", [z, g.const(f"bd{i}", _np(blk.dw.bias))], f"z{i}")
        z = g.prelu_norm(z, blk.act2, blk.norm2.norm, f"z{i}")
        rs = np.concatenate(
            [_np(blk.res.weight[..., 0]), _np(blk.skip.weight[..., 0])]
        ).T  # (H, 2B)
        ys = g.op("Gemm", [z, g.const(f"rs{i}", rs), ys], f"ys{i + 1}")
        res_bias = res_bias + _np(blk.res.bias)
    g.op("Concat", [f"h{i}_out" for i in range(len(pads))], "state_out", axis=0)
    act, conv = net.mask[0], net.mask[1]
    sk = g.op(
        "Slice", [ys, g.ints("sk_s", bott), g.ints("sk_e", 2 * bott), g.ints("sk_ax", 1)], "skips"
    )
    sk = g.op("LeakyRelu", [sk], "skips_act", alpha=float(act.weight.detach()))
    m = g.op(
        "Gemm",
        [sk, g.const("mask_w", _np(conv.weight[..., 0]).T), g.const("mask_b", _np(conv.bias))],
        "m_lin",
    )
    m = g.op("Sigmoid", [m], "m")
    m = g.op("Reshape", [m, g.ints("m_shape", nf, n_src, n_filt)], "m3")
    w3 = g.op("Unsqueeze", [w, g.ints("w_ax", 1)], "w3")
    mw = g.op("Mul", [m, w3], "masked")
    mw = g.op("Reshape", [mw, g.ints("masked_shape", nf * n_src, n_filt)], "masked2")
    dec = np.pad(_np(net.decoder.weight.reshape(n_filt, kern)), ((0, 0), (0, pieces * hop - kern)))
    parts = g.op("MatMul", [mw, g.const("dec", dec)], "parts_flat")
    g.op("Reshape", [parts, g.ints("parts_shape", nf, n_src * pieces * hop)], "parts")
    graph = helper.make_graph(g.nodes, "avlab_causal_step", inputs, outputs, g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="avlab",
        ir_version=_IR_VERSION,
    )
    checker.check_model(model)
    return model.SerializeToString()


class OnnxStep:
    """Runs streaming steps with ONNX Runtime and keeps the histories.

    Parameters
    ----------
    net : torch.nn.Module
        A causal network; its weights are read when each session is built (at
        :meth:`prepare`, or the first step with a new frame count), so build a
        new step after changing them.
    config : SeparatorConfig
    threads : int
        ONNX Runtime intra-op threads (1: the per-step matrices are tiny).
    """

    def __init__(self, net: Any, config: SeparatorConfig, threads: int = 1) -> None:
        if not onnx_available():
            raise SeparateError(
                "the 'onnx' streaming engine needs the onnx and onnxruntime packages.",
                "install avlab with the 'deep' extra (pip install -e '.[deep]'), "
                "or use engine='fused'.",
            )
        self.net, self.config, self.threads = net, config, int(threads)
        self._pads = [int(blk.pad[0]) for blk in net.tcn]
        self._sessions: dict[int, Any] = {}
        self._frame_index: dict[int, np.ndarray] = {}
        self.reset()

    def prepare(self, *n_frames: int) -> None:
        """Build the sessions for these frame counts now, and run each once on zeros.

        The first run of a session costs a few times a later one (allocations);
        doing it here keeps it out of the first blocks of a stream.
        """
        c = self.config
        for nf in n_frames:
            state = np.zeros((sum(self._pads), c.hidden), np.float32)
            frames = np.zeros((nf, c.kernel), np.float32)
            self._session(nf).run(None, {"frames": frames, "state": state})

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` intra-op threads from now on (the built sessions are rebuilt)."""
        if int(threads) != self.threads:
            self.threads = int(threads)
            built = list(self._sessions)
            self._sessions.clear()
            self.prepare(*built)

    def reset(self) -> None:
        """Zero the depthwise histories (a new stream)."""
        self._state = np.zeros((sum(self._pads), self.config.hidden), np.float32)

    def _session(self, n_frames: int) -> Any:
        sess = self._sessions.get(n_frames)
        if sess is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3  # errors only
            # idle pool threads sleep instead of spinning (with threads > 1): on a small,
            # busy machine spinning steals the core the next block needs
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            model = build_step_model(self.net, self.config, n_frames)
            sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
            self._sessions[n_frames] = sess
        return sess

    def __call__(self, buf: np.ndarray, n_frames: int) -> np.ndarray:
        """Run one step.

        Parameters
        ----------
        buf : ndarray of float32, shape ((n_frames - 1) * hop + kernel,) or longer
            Samples whose first ``n_frames`` windows (hop apart) are this step's
            encoder frames.
        n_frames : int

        Returns
        -------
        parts : ndarray of float32, shape (n_frames, n_src, pieces, hop)
            Each frame's decoded window, split into hops.
        """
        c = self.config
        index = self._frame_index.get(n_frames)
        if index is None:  # sample index of every frame, (F, kernel)
            index = np.arange(n_frames)[:, None] * c.hop + np.arange(c.kernel)
            self._frame_index[n_frames] = index
        parts, self._state = self._session(n_frames).run(
            None, {"frames": buf[index], "state": self._state}
        )
        return parts.reshape(n_frames, c.n_src, -1, c.hop)
