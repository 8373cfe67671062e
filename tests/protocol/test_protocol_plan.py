"""The shipped protocols load, and plans are deterministic and counterbalanced."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from avlab.protocol import (
    PACKAGED_PROTOCOLS,
    ProtocolError,
    available_protocols,
    counterbalance_group,
    find_protocol,
    load_protocol,
    plan_session,
    planned_duration_s,
    protocol_schema,
    stimulus_requests,
    validate_protocol,
)
from avlab.protocol.planner import speech_seconds

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["competing-talkers", "attention-switch", "av-speech-in-noise", "conversation"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_protocol_is_valid(name: str) -> None:
    assert validate_protocol(PACKAGED_PROTOCOLS / f"{name}.yaml") == []
    p = load_protocol(name)
    assert p.name == name
    assert len(p.sha256) == 64
    plan = plan_session(p, "sub-01", "01")
    assert plan.protocol == name and plan.protocol_sha256 == p.sha256
    assert [t.index for t in plan.trials] == list(range(1, len(plan.trials) + 1))
    types = [s.type for s in p.requirements.streams]
    assert {"EEG", "Gaze", "Markers"} <= set(types)
    assert p.requirements.display.refresh_hz == 60
    stims = {s.stim_id for s in plan.stimuli}
    assert stims == {tp.stim_id for t in plan.trials for tp in t.talkers}
    assert stims <= {s.stim_id for s in stimulus_requests(p)}


def test_root_symlink_points_at_packaged_protocols() -> None:
    link = REPO / "protocols"
    assert link.is_symlink()
    assert link.resolve() == PACKAGED_PROTOCOLS
    assert set(SHIPPED) <= set(available_protocols())


def test_competing_talkers_content() -> None:
    p = load_protocol("competing-talkers")
    plan = plan_session(p, "sub-01", "01")
    assert len(plan.trials) == 8
    assert Counter(t.block for t in plan.trials) == {"block1": 4, "block2": 4}
    voices = {(t.voice.engine, t.voice.name) for t in p.talkers}
    assert voices == {("flite", "slt"), ("espeak-ng", "en-us+m3")}
    for t in plan.trials:
        assert len(t.talkers) == 2 and {x.side for x in t.talkers} == {"left", "right"}
        assert t.attended in (0, 1) and t.cue is not None and t.cue.modality == "both"
        assert t.question is not None and len(t.question.options) == 4
        assert t.response == "choice"
        # the answer of the attended passage is in that passage
        stim = next(s for s in plan.stimuli if s.stim_id == t.talkers[t.attended].stim_id)
        answer = t.question.options[t.question.correct]
        assert answer.lower().removeprefix("by ").removeprefix("because of ") in stim.text.lower()
    for s in stimulus_requests(p):
        n = len(s.text.split())
        assert 80 <= n <= 160, (s.stim_id, n)
        assert 30 <= speech_seconds(s.text, s.voice.rate_wpm) <= 60
        assert s.video
    assert 5 * 60 <= planned_duration_s(plan) <= 12 * 60
    assert plan.trials[4].break_before and plan.trials[4].instructions
    assert not plan.trials[1].break_before and not plan.trials[1].instructions


def test_plan_is_deterministic_and_reproducible_from_its_seed() -> None:
    p = load_protocol("competing-talkers")
    a = plan_session(p, "sub-05", "01")
    assert a == plan_session(p, "sub-05", "01")
    assert a == plan_session(p, a.participant, a.session, seed=a.seed)
    order = [t.talkers[0].stim_id for t in a.trials]
    assert order != [t.talkers[0].stim_id for t in plan_session(p, "sub-05", "02").trials]
    assert order != [t.talkers[0].stim_id for t in plan_session(p, "sub-05", "01", seed=1).trials]


def test_counterbalancing_of_sides_and_attended_talker() -> None:
    p = load_protocol("competing-talkers")
    groups = [counterbalance_group(p, f"sub-{n:02d}") for n in range(1, 9)]
    assert groups == [0, 1, 2, 3, 0, 1, 2, 3]
    assert counterbalance_group(p, "anonymous") == counterbalance_group(p, "anonymous")

    def by_pair(participant: str) -> dict[str, tuple[str, str, int, float]]:
        plan = plan_session(p, participant, "01")
        out = {}
        for t in plan.trials:
            amy = next(x for x in t.talkers if x.talker == "amy")
            att = t.talkers[t.attended].talker
            out[amy.stim_id] = (amy.side, att, plan.counterbalance, amy.azimuth_deg)
            assert amy.position[0] == (-0.45 if amy.side == "left" else 0.45)
        return out

    g0, g1, g2, g3 = (by_pair(f"sub-0{n}") for n in (1, 2, 3, 4))
    for stim in g0:
        assert g0[stim][0] == "left" and g1[stim][0] == "right"
        assert g0[stim][3] == -30.0 and g1[stim][3] == 30.0
        assert g2[stim][0] == "left" and g3[stim][0] == "right"
        assert g0[stim][1] == g1[stim][1] != g2[stim][1] == g3[stim][1]
    attended = Counter(v[1] for v in g0.values())
    assert attended == {"amy": 4, "ben": 4}


def test_attention_switch_plans_a_switch_to_the_other_talker() -> None:
    p = load_protocol("attention-switch")
    plan = plan_session(p, "sub-03", "01")
    assert len(plan.trials) == 4
    engines = {t.voice.engine for t in p.talkers}
    assert engines == {"festival", "espeak-ng"}
    for t in plan.trials:
        assert t.switch is not None and t.switch.to == 1 - t.attended
        stims = {s.stim_id: s for s in plan.stimuli}
        for x in t.talkers:
            s = stims[x.stim_id]
            assert t.switch.at_s + 10 < speech_seconds(s.text, s.voice.rate_wpm or 150)
        # the question is about the second half of the passage attended after the switch
        text = stims[t.talkers[t.switch.to].stim_id].text.lower()
        answer = t.question.options[t.question.correct].lower()
        assert text.find(answer) > len(text) / 2


def test_speech_in_noise_conditions_are_balanced_and_rotated() -> None:
    p = load_protocol("av-speech-in-noise")
    assert p.counterbalance.groups == 8
    seen: dict[str, set[tuple[bool, float]]] = {}
    for n in range(1, 9):
        plan = plan_session(p, f"sub-{n}", "01")
        assert len(plan.trials) == 32
        cond = Counter((t.talkers[0].video, t.noise.snr_db) for t in plan.trials)
        assert set(cond) == {(v, s) for v in (True, False) for s in (-9.0, -6.0, -3.0, 0.0)}
        assert set(cond.values()) == {4}
        assert {t.response for t in plan.trials} == {"typed", "experimenter"}
        assert all(t.attended is None and t.cue is None for t in plan.trials)
        for t in plan.trials:
            seen.setdefault(t.talkers[0].stim_id, set()).add((t.talkers[0].video, t.noise.snr_db))
    assert len(seen) == 32
    assert all(len(c) == 8 for c in seen.values())  # every sentence in every condition
    for s in stimulus_requests(p):
        assert 5 <= len(s.text.split()) <= 8
        assert s.video  # needed with video in some condition


def test_conversation_has_no_stimuli_and_records_mics_and_camera() -> None:
    p = load_protocol("conversation")
    plan = plan_session(p, "sub-01", "01")
    assert stimulus_requests(p) == [] and plan.stimuli == []
    assert all(t.kind == "conversation" and not t.talkers for t in plan.trials)
    assert all(t.duration_s == 180 and t.prompt for t in plan.trials)
    assert plan.trials[0].turn_keys == {"left": "participant", "right": "partner"}
    assert {"Audio", "VideoFrames"} <= set(plan.streams)
    assert p.requirements.devices.microphones == ["participant", "partner"]
    assert p.requirements.devices.cameras == ["scene"]
    assert planned_duration_s(plan) >= 4 * 180


def test_find_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_protocol("conversation") == PACKAGED_PROTOCOLS / "conversation.yaml"
    with pytest.raises(ProtocolError, match="unknown protocol 'nope'; available: .*conversation"):
        find_protocol("nope")
    with pytest.raises(ProtocolError, match=r"nope\.yaml does not exist") as exc_info:
        find_protocol("nope.yaml")
    assert exc_info.value.exit_code == 8
    local = tmp_path / "protocols"
    local.mkdir()
    text = (PACKAGED_PROTOCOLS / "conversation.yaml").read_text()
    (local / "conversation.yaml").write_text(text)
    assert find_protocol("conversation") == Path("protocols/conversation.yaml").absolute()
    assert load_protocol("conversation").path == (local / "conversation.yaml").resolve()
    assert os.path.samefile(
        find_protocol(str(local / "conversation.yaml")), local / "conversation.yaml"
    )


def test_schema_describes_the_protocol() -> None:
    schema = protocol_schema()
    assert schema["title"] == "avlab protocol"
    assert schema["additionalProperties"] is False
    assert {"protocol", "talkers", "blocks", "counterbalance"} <= set(schema["properties"])
    assert "StreamRequirement" in schema["$defs"]
