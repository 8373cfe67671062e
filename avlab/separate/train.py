"""Training of the separation network (``avlab separate train``).

Each step draws fresh two-talker mixtures from the corpus
(:mod:`avlab.separate.corpus`): two utterances of different speakers, each
speed-perturbed (×0.9–1.1), placed at a random offset in the segment, both
reverberated in the same simulated room (or a recorded impulse response) in half
of the mixtures, mixed at a signal-to-interferer ratio of −5 to +5 dB, and
noise (recorded or pink) added in half of them at 5–25 dB SNR. The targets are
the two reverberant talker images; the loss is the negative scale-invariant SDR
under the best talker permutation (PIT).

Training runs for a wall-clock budget (``minutes``): the learning rate follows a
cosine from ``lr`` to ``lr/20`` over that budget. Every ``val_every`` steps the
network is scored on fixed validation mixtures from the same corpus; the best
one is kept. What is saved (``<out>/<mode>.pt`` state dict and ``<mode>.json``):
the architecture, the corpus manifest, the command and the training curve.
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.signal import fftconvolve, resample_poly

from avlab._logging import logger
from avlab.separate._audio import load_mono
from avlab.separate.corpus import (
    HELD_OUT_DEFAULT,
    CorpusManifest,
    build_corpus,
    room_bank,
)
from avlab.separate.model import SeparatorConfig, build_network

__all__ = [
    "CurvePoint",
    "MixtureSampler",
    "TrainOptions",
    "TrainedModelInfo",
    "curve_svg",
    "train",
]


class TrainOptions(BaseModel):
    """Settings of one training run."""

    model_config = ConfigDict(extra="forbid")

    mode: str = "causal"
    minutes: float = 60.0
    batch: int = 12
    segment_s: float = 2.0
    lr: float = 1e-3
    n_synth: int = 600
    n_rooms: int = 120
    seed: int = 0
    threads: int = 1
    val_every: int = 100
    n_val: int = 48


class CurvePoint(BaseModel):
    """One point of the training curve."""

    step: int
    minutes: float
    train_loss_db: float
    val_si_sdri_db: float


class TrainedModelInfo(BaseModel):
    """Everything saved beside the weights."""

    model_config = ConfigDict(extra="forbid")

    config: SeparatorConfig
    options: TrainOptions
    command: str
    corpus: CorpusManifest
    curve: list[CurvePoint]
    best_step: int
    best_val_si_sdri_db: float
    steps: int
    torch_version: str


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size)
    spec[1:] /= np.sqrt(f[1:])
    y = np.fft.irfft(spec, n)
    return y / (y.std() + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)) + 1e-9)


class MixtureSampler:
    """Draws random two-talker mixtures from a corpus.

    Parameters
    ----------
    audio : dict of str to ndarray
        Utterances by key.
    speakers : dict of str to str
        Speaker of each key.
    rooms : list of (rir_a, rir_b)
    rirs : list of ndarray
        Recorded impulse responses.
    noises : list of ndarray
        Recorded noise.
    srate : int
    segment_s : float
    """

    def __init__(
        self,
        audio: dict[str, np.ndarray],
        speakers: dict[str, str],
        rooms: list[tuple[np.ndarray, np.ndarray]],
        rirs: list[np.ndarray],
        noises: list[np.ndarray],
        srate: int,
        segment_s: float,
    ) -> None:
        self.audio, self.speakers = audio, speakers
        self.keys = sorted(audio)
        self.recorded = [k for k in self.keys if k.startswith("rec:")]
        self.rooms, self.rirs, self.noises = rooms, rirs, noises
        self.srate, self.n = srate, int(round(segment_s * srate))

    def _source(self, key: str, rng: np.random.Generator) -> np.ndarray:
        y = self.audio[key]
        if rng.random() < 0.5:
            factor = rng.uniform(0.9, 1.1)
            up = 20
            y = resample_poly(y, up, int(round(up * factor)))
        n = self.n
        out = np.zeros(n, dtype=np.float64)
        if y.size >= n:
            start = rng.integers(0, y.size - n + 1)
            seg = y[start : start + n]
            # sometimes the talker starts or stops inside the segment
            if rng.random() < 0.2:
                cut = rng.integers(n // 4, n)
                seg = (
                    np.concatenate([np.zeros(n - cut), seg[:cut]])
                    if rng.random() < 0.5
                    else np.concatenate([seg[:cut], np.zeros(n - cut)])
                )
            out[:] = seg
        else:
            off = rng.integers(0, n - y.size + 1)
            out[off : off + y.size] = y
        return out

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(mixture (n,), sources (2, n))`` as float32."""
        pool = self.recorded if (self.recorded and rng.random() < 0.3) else self.keys
        a = pool[rng.integers(len(pool))]
        while True:
            b = (
                self.keys[rng.integers(len(self.keys))]
                if rng.random() < 0.5 or len(self.recorded) < 2
                else self.recorded[rng.integers(len(self.recorded))]
            )
            if self.speakers[b] != self.speakers[a]:
                break
        src = np.stack([self._source(a, rng), self._source(b, rng)])
        if (self.rooms or self.rirs) and rng.random() < 0.5:
            if self.rirs and (not self.rooms or rng.random() < 0.2):
                hs = [self.rirs[rng.integers(len(self.rirs))] for _ in range(2)]
            else:
                hs = list(self.rooms[rng.integers(len(self.rooms))])
            src = np.stack([fftconvolve(s, h)[: self.n] for s, h in zip(src, hs, strict=True)])
        sir = rng.uniform(-5.0, 5.0)
        src[0] /= _rms(src[0])
        src[1] /= _rms(src[1]) * 10 ** (sir / 20)
        mix = src.sum(axis=0)
        if rng.random() < 0.5:
            if self.noises and rng.random() < 0.5:
                nz = self.noises[rng.integers(len(self.noises))]
                reps = int(np.ceil(self.n / nz.size)) + 1
                start = rng.integers(0, nz.size)
                nz = np.tile(nz, reps)[start : start + self.n]
            else:
                nz = _pink(self.n, rng)
            snr = rng.uniform(5.0, 25.0)
            mix = mix + nz / _rms(nz) * _rms(mix) * 10 ** (-snr / 20)
        scale = rng.uniform(0.05, 0.5) / (np.abs(mix).max() + 1e-9)
        return (mix * scale).astype(np.float32), (src * scale).astype(np.float32)


def si_sdr_torch(est: Any, ref: Any, eps: float = 1e-8) -> Any:
    """Scale-invariant SDR in dB over the last axis (torch tensors, zero-mean first)."""
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * (target.pow(2).sum(-1) + eps).log10() - 10 * (noise.pow(2).sum(-1) + eps).log10()


def pit_si_sdr(est: Any, ref: Any) -> Any:
    """Best-permutation SI-SDR per example for two talkers, shape (batch,), dB."""
    import torch

    a = si_sdr_torch(est, ref).mean(-1)
    b = si_sdr_torch(est.flip(1), ref).mean(-1)
    return torch.maximum(a, b)


def _files(d: Path | None, skip: tuple[str, ...]) -> list[Path]:
    if d is None:
        return []
    return [f for f in sorted(Path(d).glob("*.wav")) if f.stem not in skip]


def _load_dir(d: Path | None, srate: int, skip: tuple[str, ...] = ()) -> list[np.ndarray]:
    return [load_mono(f, srate) for f in _files(d, skip)]


def train(
    out: Path,
    options: TrainOptions,
    *,
    config: SeparatorConfig | None = None,
    speech_dir: Path | None = None,
    rir_dir: Path | None = None,
    noise_dir: Path | None = None,
    cache: Path | None = None,
    held_out: tuple[str, ...] = HELD_OUT_DEFAULT,
    init: Path | None = None,
) -> TrainedModelInfo:
    """Train a separation network for ``options.minutes`` and save the best weights.

    Parameters
    ----------
    out : Path
        Folder for ``<mode>.pt``, ``<mode>.json`` and ``<mode>-curve.csv``.
    options : TrainOptions
    config : SeparatorConfig or None
        Architecture; default the shipped one for ``options.mode``.
    speech_dir, rir_dir, noise_dir : Path or None
        Recorded speech (minus ``held_out``), impulse responses and noise.
    cache : Path or None
        Synthesized-speech cache (default ``<out>/tts-cache``).
    held_out : tuple of str
        Recorded file stems never used.
    init : Path or None
        Start from these weights (a ``.pt`` of the same architecture).

    Returns
    -------
    TrainedModelInfo
    """
    import torch

    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads)
    cfg = config or SeparatorConfig(mode=options.mode)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    audio, utts = build_corpus(
        cache or out / "tts-cache",
        srate=cfg.srate,
        n_synth=options.n_synth,
        speech_dir=speech_dir,
        held_out=held_out,
        seed=options.seed,
    )
    rooms = room_bank(options.n_rooms, cfg.srate, seed=options.seed)
    rirs = _load_dir(rir_dir, cfg.srate, held_out)
    rirs = [h / (np.abs(h).max() + 1e-12) for h in rirs]
    noises = _load_dir(noise_dir, cfg.srate, held_out)
    manifest = CorpusManifest(
        srate=cfg.srate,
        utterances=utts,
        held_out=list(held_out),
        rooms_simulated=len(rooms),
        rirs_recorded=[f.name for f in _files(rir_dir, held_out)],
        noise_files=[f.name for f in _files(noise_dir, held_out)],
    )
    logger.info(
        "corpus: %d utterances (%.2f h), %d rooms, %d recorded RIRs, %d noise files",
        len(utts),
        manifest.hours,
        len(rooms),
        len(rirs),
        len(noises),
    )
    speakers = {u.key: u.speaker for u in utts}
    sampler = MixtureSampler(audio, speakers, rooms, rirs, noises, cfg.srate, options.segment_s)
    vrng = np.random.default_rng(options.seed + 10_000)
    val = [sampler.draw(vrng) for _ in range(options.n_val)]
    vmix = torch.from_numpy(np.stack([m for m, _ in val]))
    vsrc = torch.from_numpy(np.stack([s for _, s in val]))
    with torch.no_grad():
        base_val = float(si_sdr_torch(vmix.unsqueeze(1).expand_as(vsrc), vsrc).mean())

    net = build_network(cfg)
    curve: list[CurvePoint] = []
    best, best_step, step, losses = -math.inf, 0, 0, []
    offset_min = 0.0
    if init is not None:
        # continue a run: its weights, and its curve when its .json lies beside them
        net.load_state_dict(torch.load(init, weights_only=True))
        torch.save(net.state_dict(), out / f"{cfg.mode}.pt")  # the best so far lies in out
        prev = Path(init).with_suffix(".json")
        if prev.is_file():
            old = TrainedModelInfo.model_validate_json(prev.read_text())
            curve = [p for p in old.curve if p.step <= old.best_step]
            step, best_step, best = old.best_step, old.best_step, old.best_val_si_sdri_db
            offset_min = curve[-1].minutes if curve else 0.0
            logger.info("continuing %s from step %d (%.1f min)", prev, step, offset_min)
    opt = torch.optim.Adam(net.parameters(), lr=options.lr)
    rng = np.random.default_rng(options.seed + step)
    t0 = time.perf_counter()
    budget = options.minutes * 60.0
    while True:
        elapsed = time.perf_counter() - t0
        frac = min(1.0, elapsed / budget)
        lr = options.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [sampler.draw(rng) for _ in range(options.batch)]
        mix = torch.from_numpy(np.stack([m for m, _ in batch]))
        src = torch.from_numpy(np.stack([s for _, s in batch]))
        net.train()
        loss = -pit_si_sdr(net(mix), src).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        done = elapsed >= budget
        if step % options.val_every == 0 or done:
            net.eval()
            with torch.no_grad():
                vs = float(pit_si_sdr(net(vmix), vsrc).mean()) - base_val
            point = CurvePoint(
                step=step,
                minutes=offset_min + elapsed / 60,
                val_si_sdri_db=vs,
                train_loss_db=float(np.mean(losses[-options.val_every :])),
            )
            curve.append(point)
            logger.info(
                "%s step %d (%.1f min): train %.2f dB, validation SI-SDRi %.2f dB",
                cfg.mode,
                step,
                point.minutes,
                -point.train_loss_db,
                vs,
            )
            if vs > best:
                best, best_step = vs, step
                torch.save(net.state_dict(), out / f"{cfg.mode}.pt")
            info = TrainedModelInfo(
                config=cfg,
                options=options,
                command=" ".join(sys.argv),
                corpus=manifest,
                curve=curve,
                best_step=best_step,
                best_val_si_sdri_db=best,
                steps=step,
                torch_version=torch.__version__,
            )
            (out / f"{cfg.mode}.json").write_text(info.model_dump_json(indent=1))
            with open(out / f"{cfg.mode}-curve.csv", "w") as fh:
                fh.write("step,minutes,train_si_sdr_db,val_si_sdri_db\n")
                for p in curve:
                    fh.write(
                        f"{p.step},{p.minutes:.3f},{-p.train_loss_db:.3f},{p.val_si_sdri_db:.3f}\n"
                    )
        if done:
            break
    (out / f"{cfg.mode}-curve.svg").write_text(curve_svg(info))
    return info


def curve_svg(info: TrainedModelInfo) -> str:
    """Training curve as SVG: training SI-SDR and validation SI-SDRi against time."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    t = [p.minutes for p in info.curve]
    ax.plot(t, [-p.train_loss_db for p in info.curve], label="training SI-SDR (dB)")
    ax.plot(t, [p.val_si_sdri_db for p in info.curve], marker=".", label="validation SI-SDRi (dB)")
    ax.axvline(
        next((p.minutes for p in info.curve if p.step == info.best_step), t[-1]),
        color="0.6",
        ls=":",
        label=f"kept: step {info.best_step}",
    )
    ax.set_xlabel("training time (min, CPU)")
    ax.set_ylabel("dB")
    ax.set_title(f"{info.config.mode} network: {info.steps} steps", fontsize=10)
    ax.legend(fontsize=8)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _main() -> None:  # pragma: no cover - used by benchmarks/b7_train.py via the CLI
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--mode", default="causal")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--speech", type=Path)
    p.add_argument("--rir", type=Path)
    p.add_argument("--noise", type=Path)
    p.add_argument("--cache", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=Path)
    a = p.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(
        a.out,
        TrainOptions(mode=a.mode, minutes=a.minutes, threads=a.threads, seed=a.seed),
        speech_dir=a.speech,
        rir_dir=a.rir,
        noise_dir=a.noise,
        cache=a.cache,
        init=a.init,
    )
    random.seed(0)


if __name__ == "__main__":  # pragma: no cover
    _main()
