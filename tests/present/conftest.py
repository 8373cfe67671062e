"""A private Xvfb screen + PulseAudio null sink, and small real stimuli, for presenter tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from presenting import SIZE

from avlab.protocol.plan import StimulusRequest, Voice
from avlab.run.headless import VirtualAV, virtual_av
from avlab.stimuli import build_stimuli


@pytest.fixture(scope="package")
def av() -> VirtualAV:
    with virtual_av(size=f"{SIZE[0]}x{SIZE[1]}") as v:
        yield v


@pytest.fixture(scope="package")
def stimuli(tmp_path_factory) -> tuple[Path, list[StimulusRequest]]:
    folder = tmp_path_factory.mktemp("stim")
    reqs = [
        StimulusRequest(stim_id="a1", talker="a", text="Two blue ships sailed home.",
                        voice=Voice(engine="espeak-ng", name="en-us+m3"), video=True),
        StimulusRequest(stim_id="b1", talker="b", text="The red kite flew over the hill.",
                        voice=Voice(engine="espeak-ng", name="en-gb+f3"), video=True,
                        face="warm"),
    ]  # fmt: skip
    build_stimuli(reqs, folder, progress=False)
    return folder, reqs
