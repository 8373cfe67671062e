"""The separation networks: causality, shapes, the shipped weights, training and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avlab.separate.corpus import HELD_OUT_DEFAULT, make_sentences
from avlab.separate.inference import SeparateError, Separator, shipped_model_dir
from avlab.separate.model import SeparatorConfig, build_network
from avlab.separate.train import MixtureSampler, TrainedModelInfo, TrainOptions, pit_si_sdr, train

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_causal_output_ignores_the_future() -> None:
    torch.manual_seed(0)
    cfg = SeparatorConfig(mode="causal", kernel=32, blocks=3, repeats=1)
    net = build_network(cfg).eval()
    x = torch.randn(1, 4000)
    y = x.clone()
    y[:, 2000:] = torch.randn(1, 2000)  # change everything from sample 2000 on
    with torch.no_grad():
        a, b = net(x), net(y)
    # outputs before the encoder frame that first sees sample 2000 are identical
    first = (2000 // cfg.hop - 1) * cfg.hop
    assert torch.equal(a[..., :first], b[..., :first])
    assert not torch.allclose(a[..., 2100:], b[..., 2100:])
    assert cfg.latency_s == pytest.approx(0.004)  # 32 samples at 8 kHz


def test_noncausal_output_depends_on_the_future() -> None:
    torch.manual_seed(0)
    net = build_network(SeparatorConfig(mode="noncausal", kernel=32, blocks=3, repeats=1)).eval()
    x = torch.randn(1, 4000)
    y = x.clone()
    y[:, 2000:] = 0.0
    with torch.no_grad():
        assert not torch.allclose(net(x)[..., :1800], net(y)[..., :1800])


@pytest.mark.parametrize("mode", ["causal", "noncausal"])
def test_shipped_networks(mode: str) -> None:
    sep = Separator(mode)  # type: ignore[arg-type]
    info = json.loads((shipped_model_dir() / f"{mode}.json").read_text())
    assert (shipped_model_dir() / f"{mode}.pt").stat().st_size < 20e6  # the 20 MB cap
    assert info["config"]["mode"] == mode and info["curve"]
    held = set(info["corpus"]["held_out"])
    assert set(HELD_OUT_DEFAULT) <= held
    used = {u["voice"] for u in info["corpus"]["utterances"] if u["source"] == "recorded"}
    assert not any(h in v for h in held for v in used)  # no test utterance was trained on
    x = np.random.default_rng(0).standard_normal(44100) * 0.1
    y = sep.separate(x, 44100)
    assert y.shape == (2, 44100) and np.all(np.isfinite(y))


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeparateError, match=r"causal\.pt is missing"):
        Separator("causal", tmp_path)


def test_sentences_are_distinct_and_not_the_test_transcripts() -> None:
    s = make_sentences(300, seed=0)
    assert len(set(s)) == 300
    test = (SHARED / "speech" / "transcripts.csv").read_text().lower()
    assert not any(x.lower().rstrip(".") in test for x in s)


def test_sampler_draws_two_different_talkers_at_the_asked_ratio() -> None:
    rng = np.random.default_rng(0)
    audio = {f"k{i}": rng.standard_normal(8000 * 3).astype(np.float32) for i in range(4)}
    speakers = {"k0": "a", "k1": "a", "k2": "b", "k3": "c"}
    sm = MixtureSampler(audio, speakers, rooms=[], rirs=[], noises=[], srate=8000, segment_s=1.0)
    for _ in range(20):
        mix, src = sm.draw(rng)
        assert mix.shape == (8000,) and src.shape == (2, 8000)
        sir = 20 * np.log10(np.std(src[0]) / np.std(src[1]))
        assert -5.01 <= sir <= 5.01
    pit = pit_si_sdr(torch.from_numpy(src[None, ::-1].copy()), torch.from_numpy(src[None]))
    assert float(pit) > 80  # the permutation is found


def test_training_writes_weights_curve_and_resumes(tmp_path: Path) -> None:
    cfg = SeparatorConfig(mode="causal", kernel=32, bottleneck=16, hidden=32, blocks=2, repeats=1)
    opts = TrainOptions(mode="causal", minutes=0.05, batch=2, segment_s=0.5, n_synth=6,
                        n_rooms=2, val_every=2, n_val=2)  # fmt: skip
    info = train(tmp_path, opts, config=cfg, speech_dir=SHARED / "speech",
                 rir_dir=SHARED / "rir", noise_dir=SHARED / "noise")  # fmt: skip
    assert info.steps >= 1 and info.curve
    assert info.corpus.rirs_recorded == ["rir1.wav", "rir2.wav", "rir3.wav"]  # rir4 held out
    assert info.corpus.noise_files == ["noise2.wav"]
    assert (tmp_path / "causal.pt").is_file() and (tmp_path / "causal-curve.svg").is_file()
    sep = Separator("causal", tmp_path)
    assert sep.separate(np.ones(1000) * 0.1, 8000).shape == (2, 1000)
    again = train(tmp_path / "more", opts, config=cfg, cache=tmp_path / "tts-cache",
                  init=tmp_path / "causal.pt")  # fmt: skip
    assert again.steps > info.best_step  # continued, not restarted
    assert TrainedModelInfo.model_validate_json((tmp_path / "more" / "causal.json").read_text())


def test_noncausal_chunks_are_stitched_in_one_talker_order() -> None:
    # a stand-in network that returns the true talkers, in a different order per chunk
    rng = np.random.default_rng(0)
    n = 8000 * 11 + 123  # 11 s: 4 chunks of 4 s with 1 s overlap
    talkers = np.stack([np.sin(np.arange(n) * 0.01 * (k + 1)) * rng.uniform(0.5, 1, n)
                        for k in range(2)])  # fmt: skip
    sep = Separator("noncausal")
    calls = []

    def fake(x: np.ndarray) -> np.ndarray:
        start = sum(calls) - 1000 * 8 * len(calls) if calls else 0
        calls.append(x.size)
        seg = talkers[:, start : start + x.size] * (0.25 / np.abs(talkers.sum(0)).max())
        return seg[::-1] if len(calls) % 2 else seg

    sep._run = fake  # type: ignore[method-assign]
    y = sep.separate_native(talkers.sum(axis=0))
    assert len(calls) == 4
    if np.corrcoef(y[0], talkers[1])[0, 1] > np.corrcoef(y[0], talkers[0])[0, 1]:
        y = y[::-1]
    assert np.allclose(y, talkers, atol=1e-9)
