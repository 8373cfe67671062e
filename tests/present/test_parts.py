"""The presenter's parts that need no window: mixing, clocks, the simulated responder, config."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pydantic
import pylsl
import pytest

from avlab.errors import AvlabError
from avlab.present import PresenterConfig
from avlab.present.audio import SRATE, choose_backend, open_player, spatialize, tone, trial_mix
from avlab.present.markers import ClockMap
from avlab.present.responder import AutoResponder
from avlab.protocol.plan import QuestionPlan


def _lag_ms(a: np.ndarray, b: np.ndarray) -> float:
    """Delay of b re a, ms (cross-correlation peak)."""
    xc = np.correlate(b, a, mode="full")
    return (int(np.argmax(xc)) - (a.size - 1)) / SRATE * 1e3


def test_spatialize_left_is_louder_and_earlier_on_the_left() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SRATE // 10)
    st = spatialize(x, -90.0)
    ild_db = 20 * np.log10(np.std(st[:, 0]) / np.std(st[:, 1]))
    assert ild_db == pytest.approx(10.0, abs=0.1)
    # Woodworth ITD at 90 degrees: 0.0875 / 343 * (pi / 2 + 1) = 0.656 ms
    assert _lag_ms(st[:, 0], st[:, 1]) == pytest.approx(0.656, abs=0.025)
    right = spatialize(x, 45.0)
    assert np.std(right[:, 1]) > np.std(right[:, 0])
    assert _lag_ms(right[:, 1], right[:, 0]) == pytest.approx(0.38, abs=0.025)
    centre = spatialize(x, 0.0)
    np.testing.assert_array_equal(centre[:, 0], centre[:, 1])


def test_trial_mix_levels_onsets_and_snr() -> None:
    rng = np.random.default_rng(1)
    a = 0.05 * rng.standard_normal(SRATE)
    b = 0.05 * rng.standard_normal(SRATE // 2)
    noise = 0.05 * rng.standard_normal(SRATE // 4)  # shorter than the trial: tiled
    mix, gain = trial_mix([(a, 0.0, 0.0, 0.0), (b, -6.0, 0.0, 1.0)], None, None)
    assert gain == 0.0 and mix.shape == (int(1.5 * SRATE), 2) and mix.dtype == np.float32
    tail = mix[SRATE + 100 :, 0]
    assert 20 * np.log10(np.std(tail) / np.std(b)) == pytest.approx(-6.0, abs=0.1)
    only_noise, _ = trial_mix([(np.zeros(SRATE), 0.0, 0.0, 0.0)], (noise, 10.0), None)
    mid = only_noise[SRATE // 4 : 3 * SRATE // 4, 0]
    assert 20 * np.log10(np.std(mid) / np.std(noise)) == pytest.approx(-10.0, abs=0.2)
    loud, gain = trial_mix([(np.ones(100), 6.0, 0.0, 0.0)], None, 0.01)
    assert np.abs(loud).max() == pytest.approx(0.98, abs=1e-6)
    assert gain == pytest.approx(20 * np.log10(0.98 / 10 ** (6 / 20)), abs=1e-6)
    assert loud.shape == (480, 2)  # duration_s cuts the mix


def test_tone_has_ramps_and_level() -> None:
    t = tone(1000.0, 0.15, level=0.1)
    assert t.size == int(0.15 * SRATE)
    assert abs(t[0]) < 1e-6 and abs(t[-1]) < 1e-3
    assert np.abs(t).max() == pytest.approx(0.1, abs=1e-3)


def test_choose_backend() -> None:
    assert choose_backend("ptb", None) == "ptb"
    assert choose_backend("sounddevice", "hw:0") == "sounddevice"
    assert choose_backend("auto", "pulse") == "sounddevice"
    assert choose_backend("auto", None) == "sounddevice"


def test_auto_backend_follows_the_sound_server(monkeypatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent")
    assert choose_backend("auto", "hw:0") == "sounddevice"
    monkeypatch.delenv("PULSE_SERVER")
    monkeypatch.setattr("avlab.present.audio.shutil.which", lambda name: None)
    assert choose_backend("auto", "hw:0") == "ptb"


def test_ptb_is_refused_on_pulseaudio(av, monkeypatch) -> None:
    for k, v in av.env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(AvlabError, match="PulseAudio's ALSA plugin") as err:
        open_player("ptb", None)
    assert "sounddevice" in err.value.hint


def test_clock_map_recovers_a_known_offset() -> None:
    cm = ClockMap(lambda: pylsl.local_clock() - 1234.5)
    assert cm.offset_s == pytest.approx(1234.5, abs=1e-4)
    assert 0 <= cm.uncertainty_s < 1e-3
    assert cm.to_lsl(10.0) == pytest.approx(1244.5, abs=1e-4)
    # pylsl.local_clock is CLOCK_MONOTONIC on Linux (docs/presenter.md)
    assert pylsl.local_clock() == pytest.approx(time.clock_gettime(time.CLOCK_MONOTONIC), abs=1e-3)


def test_auto_responder_accuracy_and_rt() -> None:
    q = QuestionPlan(text="?", options=["a", "b", "c", "d"], correct=2)
    r = AutoResponder(0.75, seed=5, rt_median_s=0.8, rt_sigma=0.2)
    answers = np.array([r.choice(q) for _ in range(4000)])
    assert np.mean(answers == 2) == pytest.approx(0.75, abs=0.03)
    assert set(answers[answers != 2]) == {0, 1, 3}
    rts = np.array([r.rt() for _ in range(4000)])
    assert np.median(rts) == pytest.approx(0.8, rel=0.05)
    assert rts.min() >= 0.2 and rts.max() <= 3.2
    again = AutoResponder(0.75, seed=5, rt_median_s=0.8, rt_sigma=0.2)
    assert [again.choice(q) for _ in range(50)] == answers[:50].tolist()
    assert r.typed(None, "one two three") in ("one two three", "two three", "one three", "one two")


def test_config_is_strict(tmp_path) -> None:
    ok = {"plan_file": "p.json", "stimuli_dir": "s", "out_dir": "o"}
    cfg = PresenterConfig(**ok)
    assert cfg.audio_backend == "auto" and cfg.responder == "keyboard" and cfg.trials is None
    with pytest.raises(pydantic.ValidationError, match="audio_backend"):
        PresenterConfig(**ok, audio_backend="alsa")
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        PresenterConfig(**ok, colour="red")
    with pytest.raises(pydantic.ValidationError, match="accuracy"):
        PresenterConfig(**ok, accuracy=1.5)


def test_entry_point_errors_are_one_line(tmp_path) -> None:
    cfg = tmp_path / "presenter.json"
    plan = str(tmp_path / "missing.json")
    out = str(tmp_path / "o")
    cfg.write_text(json.dumps({"plan_file": plan, "stimuli_dir": "s", "out_dir": out}))
    res = subprocess.run([sys.executable, "-m", "avlab.present", str(cfg)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "missing.json" in errors[0]
    assert res.stdout == ""
    bad = tmp_path / "bad.json"
    bad.write_text('{"plan_file": 3}')
    res = subprocess.run([sys.executable, "-m", "avlab.present", str(bad)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "plan_file" in res.stderr


def test_plain_stimulus_folder(tmp_path) -> None:
    """A folder without stimuli.json: <stim_id>.wav/.mp4 and noise-<kind>.wav."""
    import cv2
    import soundfile as sf

    from avlab.errors import SessionError
    from avlab.present.stage import VideoReader
    from avlab.present.stimuli import PlainStimuli, load_stimuli, sha256_file

    sf.write(tmp_path / "s1.wav", np.zeros(4800), SRATE)
    sf.write(tmp_path / "noise-white.wav", np.zeros(4800), SRATE)
    vw = cv2.VideoWriter(str(tmp_path / "s1.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for k in range(10):
        vw.write(np.full((48, 64, 3), 20 * k, np.uint8))
    vw.release()
    stim = load_stimuli(tmp_path)
    assert isinstance(stim, PlainStimuli)
    s1 = stim.get("s1")
    assert s1.video == tmp_path / "s1.mp4" and s1.sha256 == sha256_file(tmp_path / "s1.wav")
    assert stim.noise("white") == stim.noise("noise-white") == tmp_path / "noise-white.wav"
    reader = VideoReader(s1.video, prefetch=2)
    assert reader.fps == pytest.approx(25.0) and reader.n_frames == 10
    # PsychoPy textures: RGB in [-1, 1], rows bottom-up; frame 5 is grey 100 (MPEG-4: +-6)
    assert reader.frame(5).shape == (48, 64, 3)
    assert reader.frame(5).mean() == pytest.approx(100 / 127.5 - 1, abs=0.05)
    assert reader.frame(2).mean() == reader.frame(5).mean()  # never backwards: oldest kept
    assert reader.frame(6).mean() == pytest.approx(120 / 127.5 - 1, abs=0.05)
    assert reader.frame(99).mean() == pytest.approx(180 / 127.5 - 1, abs=0.05)  # clipped
    reader.close()
    with pytest.raises(SessionError, match="s2.wav does not exist"):
        stim.get("s2")
    with pytest.raises(SessionError, match="noise-babble.wav does not exist"):
        stim.noise("babble")
    with pytest.raises(SessionError, match="does not exist"):
        load_stimuli(tmp_path / "nope")
