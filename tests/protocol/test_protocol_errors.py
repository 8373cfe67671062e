"""Bad protocols: each kind of mistake is reported at its line and field, with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from avlab.protocol import ProtocolError, load_protocol, validate_protocol

# A small valid protocol; the cases below replace one numbered line.
BASE = """\
protocol:
  name: tiny
talkers:
  - id: amy
    voice: {engine: espeak-ng, name: en-us+f3}
    side: left
    utterances:
      - id: u1
        text: one two three four five six seven eight nine ten
        question: {text: Which one, options: [a, b, c], correct: 1}
  - id: ben
    voice: {engine: flite, name: slt}
    side: right
    utterances:
      - {id: u2, text: eleven twelve thirteen fourteen fifteen sixteen}
blocks:
  - id: b1
    trials:
      - talkers: [{talker: amy, say: u1}, {talker: ben, say: u2}]
        attend: amy
        duration_s: 30
        switch: {at_s: 10, to: ben}
        noise: {kind: white, snr_db: [0, 3]}
counterbalance: {groups: 4, swap_sides: true, swap_attended: true}
"""


def write(tmp_path: Path, line: int | None = None, new: str = "") -> Path:
    lines = BASE.splitlines()
    if line is not None:
        lines[line - 1] = new
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_base_is_valid(tmp_path: Path) -> None:
    assert validate_protocol(write(tmp_path)) == []
    assert load_protocol(write(tmp_path)).name == "tiny"


# (line, replacement, expected field, words in the message, words in the fix)
CASES = {
    "unknown key (typo)": (
        6,
        "    sied: left",
        "talkers[0].sied",
        "unknown key 'sied' (did you mean 'side'?)",
        "rename it to 'side'",
    ),
    "wrong type": (
        21,
        "        duration_s: long",
        "blocks[0].trials[0].duration_s",
        "valid number",
        "write a number",
    ),
    "unknown talker": (
        19,
        "      - talkers: [{talker: amy, say: u1}, {talker: bon, say: u2}]",
        "blocks[0].trials[0].talkers[1].talker",
        "unknown talker 'bon' (did you mean 'ben'?)",
        "talkers:",
    ),
    "duplicate talker id": (
        11,
        "  - id: amy",
        "talkers[1].id",
        "duplicate talker id 'amy'",
        "its own id",
    ),
    "switch after trial end": (
        22,
        "        switch: {at_s: 40, to: ben}",
        "blocks[0].trials[0].switch.at_s",
        "switch at 40 s is after the trial ends (duration_s: 30.0 s)",
        "earlier than 30.0 s",
    ),
    "empty SNR list": (
        23,
        "        noise: {kind: white, snr_db: []}",
        "blocks[0].trials[0].noise.snr_db",
        "empty SNR list",
        "at least one SNR",
    ),
    "correct answer out of range": (
        10,
        "        question: {text: Which one, options: [a, b, c], correct: 3}",
        "talkers[0].utterances[0].question.correct",
        "index 3 is out of range for 3 options",
        "use 0 to 2",
    ),
    "correct answer not an option": (
        10,
        "        question: {text: Which one, options: [a, b, c], correct: d}",
        "talkers[0].utterances[0].question.correct",
        "'d' is not one of the options",
        "exactly as in 'options'",
    ),
    "missing speech file": (
        15,
        "      - {id: u2, file: speech/nope.wav}",
        "talkers[1].utterances[0].file",
        "speech file 'speech/nope.wav' not found",
        "relative to the protocol file",
    ),
    "unknown voice": (
        12,
        "    voice: {engine: flite, name: slx}",
        "talkers[1].voice.name",
        "flite has no voice 'slx' (did you mean 'slt'?)",
        "slt",
    ),
    "unknown espeak variant": (
        5,
        "    voice: {engine: espeak-ng, name: en-us+zz9}",
        "talkers[0].voice.name",
        "espeak-ng has no voice '+zz9'",
        "+m3",
    ),
    "unknown engine": (
        5,
        "    voice: {engine: espeak, name: en-us+f3}",
        "talkers[0].voice.engine",
        "'espeak' is not one of espeak-ng, flite, festival, file",
        "write 'espeak-ng'",
    ),
    "counterbalance groups do not divide": (
        24,
        "counterbalance: {groups: 3, swap_sides: true, swap_attended: true}",
        "counterbalance.groups",
        "3 groups do not divide into the 4",
        "multiple of 4",
    ),
    "YAML syntax error": (
        20,
        "        attend: amy: ben",
        "(yaml)",
        "YAML syntax error",
        "indentation",
    ),
    "duplicate YAML key": (
        21,
        "        attend: ben",
        "blocks[0].trials[0].attend",
        "duplicate key 'attend' (first on line 20)",
        "remove one",
    ),
    "missing required key": (
        17,
        "  - label: b1",
        "blocks[0].id",
        "required key 'id' is missing",
        "add 'id:'",
    ),
    "attended talker not in trial": (
        20,
        "        attend: eve",
        "blocks[0].trials[0].attend",
        "attended talker 'eve' is not in this trial",
        "amy, ben",
    ),
    "switch to the attended talker": (
        22,
        "        switch: {at_s: 10, to: amy}",
        "blocks[0].trials[0].switch.to",
        "already attended",
        "other talker",
    ),
    "unknown utterance": (
        19,
        "      - talkers: [{talker: amy, say: u9}, {talker: ben, say: u2}]",
        "blocks[0].trials[0].talkers[0].say",
        "talker 'amy' has no utterance 'u9'",
        "u1",
    ),
    "invalid id": (
        17,
        "  - id: block one",
        "blocks[0].id",
        "'block one' is not a valid id",
        "no spaces",
    ),
    "two talkers on one side": (
        13,
        "    side: left",
        "blocks[0].trials[0].talkers",
        "2 talkers on the left",
        "different sides",
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_protocol(tmp_path: Path, kind: str) -> None:
    line, new, field, message, fix = CASES[kind]
    path = write(tmp_path, line, new)
    issues = validate_protocol(path)
    hits = [i for i in issues if i.field == field]
    assert hits, f"{kind}: no issue at {field}: {[str(i) for i in issues]}"
    issue = hits[0]
    expected_line = 19 if kind == "two talkers on one side" else line
    assert issue.line == expected_line
    assert issue.file == str(path)
    assert message in issue.message
    assert fix in issue.fix
    assert issue.severity == "error"
    assert str(issue).startswith(f"{path}:{expected_line}: {field}: ")
    assert ". Fix: " in str(issue)
    with pytest.raises(ProtocolError, match=rf"tiny\.yaml:{expected_line}: ") as exc_info:
        load_protocol(path)
    assert exc_info.value.exit_code == 8
    assert issue in exc_info.value.issues


def test_all_errors_collected_at_once(tmp_path: Path) -> None:
    text = BASE.replace("    side: left", "    sied: left").replace(
        "duration_s: 30", "duration_s: long"
    )
    text = text.replace("{groups: 4,", "{groups: 4, grups: 2,")
    path = tmp_path / "many.yaml"
    path.write_text(text)
    issues = validate_protocol(path)
    assert [(i.line, i.field) for i in issues] == [
        (6, "talkers[0].sied"),
        (21, "blocks[0].trials[0].duration_s"),
        (24, "counterbalance.grups"),
    ]
    with pytest.raises(ProtocolError) as exc_info:
        load_protocol(path)
    assert "has 3 problems" in exc_info.value.message
    assert "avlab protocol validate" in exc_info.value.hint


def test_single_error_hint_is_its_fix(tmp_path: Path) -> None:
    path = write(tmp_path, 6, "    sied: left")
    with pytest.raises(ProtocolError) as exc_info:
        load_protocol(path)
    assert exc_info.value.hint == "rename it to 'side'"


def test_not_a_mapping_and_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    (issue,) = validate_protocol(path)
    assert (issue.line, issue.field) == (1, "")
    assert "YAML mapping" in issue.message
    raw = tmp_path / "latin1.yaml"
    raw.write_bytes(b"protocol:\n  name: caf\xe9\n")
    (issue,) = validate_protocol(raw)
    assert "not UTF-8" in issue.message
