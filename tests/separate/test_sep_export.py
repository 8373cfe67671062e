"""``avlab separate export-onnx``: the written step graphs, driven as a host would drive them.

The host loop below uses ONNX Runtime and the description only (nothing from
avlab), following ``causal-step.json`` and :mod:`avlab.separate.export`'s
docstring; its output must equal the offline causal network, delayed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from avlab.separate.export import StepExport, export_step
from avlab.separate.inference import SeparateError, Separator

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"


def _host_stream(folder: Path, x: np.ndarray) -> np.ndarray:
    """Run the exported graphs block by block; the overlap-added output, (n_src, n)."""
    d = json.loads((folder / "causal-step.json").read_text())
    block, kernel, hop, n_src, pieces = (
        d[k] for k in ("block", "kernel", "hop", "n_src", "pieces")
    )
    sessions = {int(f): ort.InferenceSession(str(folder / name)) for f, name in d["graphs"].items()}
    state = np.zeros(d["state_shape"], np.float32)
    pending = np.zeros(0, np.float32)
    out = np.zeros((n_src, x.size + pieces * hop), np.float32)
    done = 0  # frames so far
    for i in range(0, x.size, block):
        buf = np.concatenate((pending, x[i : i + block]))
        n_frames = (buf.size - kernel) // hop + 1 if buf.size >= kernel else 0
        if n_frames:
            frames = np.stack([buf[f * hop : f * hop + kernel] for f in range(n_frames)])
            parts, state = sessions[n_frames].run(None, {"frames": frames, "state": state})
            parts = parts.reshape(n_frames, n_src, pieces * hop)
            for f in range(n_frames):
                at = (done + f) * hop
                out[:, at : at + pieces * hop] += parts[f]
            done += n_frames
            pending = buf[n_frames * hop :]
        else:
            pending = buf
    return out[:, : x.size]


@pytest.mark.parametrize("block_ms", [2.0, 6.0])
def test_exported_graphs_equal_the_offline_network(tmp_path: Path, block_ms: float) -> None:
    sep = Separator("causal")
    block = round(block_ms * 8)
    desc = export_step(sep, block, tmp_path)
    assert StepExport.model_validate_json((tmp_path / "causal-step.json").read_text()) == desc
    assert desc.latency_ms == pytest.approx(4.0 + block_ms)  # 32-sample kernel at 8 kHz + block
    assert desc.state_shape == (sum(desc.state_rows), sep.config.hidden)
    assert desc.frames_steady == block // 16 and len(desc.graphs) == (1 if block_ms == 2 else 2)
    x, srate = sf.read(SPEECH / "spk2_snt1.wav", dtype="float64")
    x = resample_poly(x, 1, 2).astype(np.float32)[: 8000 * 2 // block * block]
    with torch.inference_mode():
        ref = sep.net(torch.from_numpy(x)[None])[0].numpy()
    got = _host_stream(tmp_path, x)
    # the host's overlap-add emits every sample once all its frames are in: no delay here
    err = np.abs(got[:, : -desc.delay] - ref[:, : -desc.delay]).max() / np.abs(ref).max()
    assert err < 5e-6


def test_export_refuses_bad_blocks_and_the_noncausal_network(tmp_path: Path) -> None:
    with pytest.raises(SeparateError, match="only the causal network"):
        export_step(Separator("noncausal"), 48, tmp_path)
    r = subprocess.run([sys.executable, "-m", "avlab", "separate", "export-onnx",
                        str(tmp_path / "x"), "--block-ms", "5"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 17 and "--block-ms 5 is not a whole number" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()
    r = subprocess.run([sys.executable, "-m", "avlab", "separate", "export-onnx",
                        str(tmp_path / "ok")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "latency 10 ms" in r.stdout and (tmp_path / "ok" / "causal-step-f3.onnx").is_file()
