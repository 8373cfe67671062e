"""A small stimulus set built once per test session (every engine, video, a short clip)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avlab.protocol.plan import StimulusRequest, Voice
from avlab.stimuli import StimulusSet, build_stimuli

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
TEXT = "The old lighthouse on the northern cape was painted white with a green stripe."
N_WORDS = len(TEXT.split())  # 14


def _requests() -> list[StimulusRequest]:
    return [
        StimulusRequest(stim_id="amy-u1", talker="amy", text=TEXT, video=True, face="warm",
                        voice=Voice(engine="flite", name="slt", rate_wpm=160)),
        StimulusRequest(stim_id="ben-u1", talker="ben", text=TEXT, video=True, face="cool",
                        voice=Voice(engine="espeak-ng", name="en-us+m3", rate_wpm=155, pitch=40)),
        StimulusRequest(stim_id="cal-u1", talker="cal", text=TEXT,
                        voice=Voice(engine="festival", name="voice_kal_diphone")),
        StimulusRequest(stim_id="rec-short", talker="rec", text="", file="speech/short.wav",
                        voice=Voice(engine="file")),
        StimulusRequest(stim_id="rec-s1", talker="rec", text="", file="speech/spk1_snt1.wav",
                        voice=Voice(engine="file")),
    ]  # fmt: skip


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("proto")
    (base / "speech").mkdir()
    shutil.copy(SPEECH / "spk1_snt1.wav", base / "speech" / "spk1_snt1.wav")
    x, sr = sf.read(SPEECH / "spk1_snt1.wav")
    loudest = int(np.argmax(np.abs(x)))
    start = max(0, loudest - int(0.15 * sr))
    sf.write(base / "speech" / "short.wav", x[start : start + int(0.3 * sr)], sr)  # 0.3 s
    return base


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, base_dir: Path) -> StimulusSet:
    out = tmp_path_factory.mktemp("stimuli")
    return build_stimuli(_requests(), out, base_dir=base_dir, progress=False)


@pytest.fixture
def requests() -> list[StimulusRequest]:
    """The requests of the ``built`` set."""
    return _requests()
