"""Deployment export of the causal network's streaming step (``avlab separate export-onnx``).

A hearing aid, or any real-time host, runs the causal network one block at a
time. :func:`export_step` writes, for one block size, the step graphs that
:class:`avlab.separate.stream.StreamingSeparator` runs with its ``"onnx"``
engine (:func:`avlab.separate.onnx_step.build_step_model`) as ``.onnx`` files,
and a description (``causal-step.json``, :class:`StepExport`) of everything the
host needs to drive them: sample rate, frame and hop, the state tensor's shape
and layout, which graph to use for which call, and how the outputs are
overlap-added. The host's loop, in the terms of that file:

1. keep ``pending`` (input samples not yet in a whole frame, empty at the start)
   and ``state`` (zeros of ``state_shape``);
2. per block of ``block`` samples: ``buf = pending + block``; ``F = (len(buf) -
   kernel) // hop + 1`` (``frames_first`` on the first call, then
   ``frames_steady``; with a block shorter than the kernel the first call has
   ``F = 0``: run nothing, keep ``buf`` as ``pending``); ``frames[f] =
   buf[f*hop : f*hop + kernel]``; run the graph
   for ``F`` with ``frames`` and ``state``; keep ``state_out`` as the next
   ``state`` and ``buf[F*hop:]`` as ``pending``;
3. ``parts`` (F, n_src * pieces * hop) are each frame's decoded window: add
   frame ``f``'s ``pieces`` hops at hops ``f .. f + pieces - 1`` of the output
   (overlap-add); a hop is final once no later frame adds to it, so the output
   lags the offline network by ``delay`` samples.

The test drives the written files this way, with ONNX Runtime and nothing from
avlab, and checks the result against the offline network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from avlab.separate.inference import SeparateError, Separator

__all__ = ["StepExport", "export_step"]

#: Name of the description written beside the graphs.
DESCRIPTION = "causal-step.json"


class StepExport(BaseModel):
    """What a host needs to run the exported streaming step (``causal-step.json``)."""

    model_config = ConfigDict(extra="forbid")

    format: str = "avlab-causal-step/1"
    srate: int
    """Sample rate of the network's input and output, Hz."""
    block: int
    """Samples per call (the block)."""
    kernel: int
    """Encoder window, samples (the algorithmic latency)."""
    hop: int
    """Encoder hop, samples."""
    n_src: int
    """Talkers in the output."""
    pieces: int
    """Hops spanned by one decoded window."""
    delay: int
    """Samples by which the streamed output lags the offline network."""
    latency_ms: float
    """Algorithmic latency plus block buffering, ms (compute time excluded)."""
    frames_first: int
    """Encoder frames in the first call's step."""
    frames_steady: int
    """Encoder frames in every later call's step."""
    graphs: dict[int, str]
    """Frames per step -> ``.onnx`` file name (beside this description)."""
    state_shape: tuple[int, int]
    """Shape of ``state`` / ``state_out``: (sum of history rows, hidden channels)."""
    state_rows: list[int]
    """History rows (past depthwise inputs, oldest first) of each TCN block, in order."""
    inputs: dict[str, str]
    outputs: dict[str, str]
    weights: str
    """The ``.pt`` the graphs were built from."""
    weights_sha256: str
    opset: int
    onnxruntime_tested: str
    """The ONNX Runtime version the graphs were checked with when written."""


def export_step(sep: Separator, block: int, out: Path) -> StepExport:
    """Write the streaming step graphs for ``block``-sample calls and their description.

    Parameters
    ----------
    sep : Separator
        The causal network (``Separator("causal", model_dir)``).
    block : int
        Samples per call; a positive multiple of the hop (see
        :func:`avlab.separate.stream.block_samples`).
    out : Path
        Folder (created) for ``causal-step-f<F>.onnx`` and ``causal-step.json``.

    Returns
    -------
    StepExport
        The description, as written.

    Raises
    ------
    SeparateError
        If the network is not causal, onnx/onnxruntime are missing, or ``out``
        cannot be written.
    """
    from avlab.separate.onnx_step import OPSET, build_step_model, onnx_available
    from avlab.separate.stream import StreamingSeparator

    if sep.mode != "causal":
        raise SeparateError(
            f"only the causal network streams; got the {sep.mode} one.", "use --mode causal."
        )
    if not onnx_available():
        raise SeparateError(
            "export-onnx needs the onnx and onnxruntime packages.",
            "install avlab with the 'deep' extra (pip install -e '.[deep]').",
        )
    # for the block check and the layout only: the "modules" engine builds nothing up front
    # (the default "onnx" one would build and run every step graph once more)
    stream = StreamingSeparator(sep.net, sep.config, block, engine="modules")
    import onnxruntime as ort

    c = sep.config
    first, steady = stream.step_frames
    rows = stream.state_rows
    try:
        out.mkdir(parents=True, exist_ok=True)
        graphs = {}
        for nf in sorted({n for n in (first, steady) if n > 0}):
            name = f"causal-step-f{nf}.onnx"
            (out / name).write_bytes(build_step_model(sep.net, c, nf))
            graphs[nf] = name
        desc = StepExport(
            srate=c.srate,
            block=block,
            kernel=c.kernel,
            hop=c.hop,
            n_src=c.n_src,
            pieces=stream.pieces,
            delay=stream.delay,
            latency_ms=stream.latency_s * 1e3,
            frames_first=max(first, 0),
            frames_steady=steady,
            graphs=graphs,
            state_shape=(sum(rows), c.hidden),
            state_rows=rows,
            inputs={
                "frames": "float32 (F, kernel): the step's encoder windows, hop apart",
                "state": "float32 state_shape: the previous call's state_out (zeros at start)",
            },
            outputs={
                "parts": "float32 (F, n_src * pieces * hop): each frame's decoded window "
                "per talker, padded to whole hops (overlap-add them)",
                "state_out": "float32 state_shape: the state for the next call",
            },
            weights=str(sep.weights_path),
            weights_sha256=hashlib.sha256(sep.weights_path.read_bytes()).hexdigest(),
            opset=OPSET,
            onnxruntime_tested=ort.__version__,
        )
        (out / DESCRIPTION).write_text(desc.model_dump_json(indent=1))
    except OSError as exc:
        raise SeparateError(
            f"cannot write the export to {out}: {exc}.", "choose a writable folder with room."
        ) from exc
    for nf, name in graphs.items():  # the written files load and run in ONNX Runtime
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        sess.run(None, {"frames": np.zeros((nf, c.kernel), np.float32),
                        "state": np.zeros(desc.state_shape, np.float32)})  # fmt: skip
    return desc
