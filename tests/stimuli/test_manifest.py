"""Rebuilds skip unchanged stimuli; changed files and bad manifests are named; bad voices too."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from avlab.errors import SessionError
from avlab.protocol.plan import StimulusRequest, Voice
from avlab.stimuli import StimulusError, StimulusSet, build_stimuli, check_engine_voice
from avlab.stimuli import tts as tts_module
from avlab.stimuli.manifest import MANIFEST_NAME


@pytest.fixture
def copy(built: StimulusSet, tmp_path: Path) -> Path:
    out = tmp_path / "set"
    shutil.copytree(built.folder, out)
    return out


def _no_synthesis(*args: object, **kwargs: object) -> None:
    raise AssertionError("synthesized although nothing changed")


def test_rebuild_is_idempotent_and_fast(
    copy: Path, base_dir: Path, requests: list[StimulusRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (copy / MANIFEST_NAME).read_text()
    monkeypatch.setattr(tts_module, "synthesize", _no_synthesis)
    t0 = time.perf_counter()
    again = build_stimuli(requests, copy, base_dir=base_dir, progress=False)
    elapsed = time.perf_counter() - t0
    assert again.rebuilt == ()
    assert elapsed < 2.0, elapsed
    after = StimulusSet.load(copy)
    old = StimulusSet.load(copy.parent / "set", verify=False)
    assert [s.sha256 for s in after.stimuli] == [s.sha256 for s in old.stimuli]
    assert (copy / MANIFEST_NAME).read_text() == before  # not even rewritten


def test_changed_request_rebuilds_only_it(
    copy: Path, base_dir: Path, requests: list[StimulusRequest]
) -> None:
    old = StimulusSet.load(copy)
    changed = [r.model_copy(update={"text": "A different sentence."}) if r.stim_id == "ben-u1"
               else r for r in requests]  # fmt: skip
    new = build_stimuli(changed, copy, base_dir=base_dir, progress=False)
    # the speech changed, so the noises made from it follow; white noise does not
    assert set(new.rebuilt) == {"ben-u1", "noise-speech-shaped", "noise-babble"}
    assert new.get("ben-u1").sha256 != old.get("ben-u1").sha256
    assert new.get("amy-u1").sha256 == old.get("amy-u1").sha256
    # fewer requests: the dropped stimulus and its files are gone
    fewer = build_stimuli(changed[:2], copy, base_dir=base_dir, progress=False)
    assert fewer.ids == ["amy-u1", "ben-u1"]
    assert not (copy / "cal-u1.wav").exists()
    forced = build_stimuli(changed[:1], copy, base_dir=base_dir, progress=False, force=True)
    assert set(forced.rebuilt) == {"amy-u1", "noise-speech-shaped", "noise-babble", "noise-white"}


def test_checksum_mismatch_is_named(
    copy: Path, base_dir: Path, requests: list[StimulusRequest]
) -> None:
    wav = copy / "amy-u1.wav"
    data = bytearray(wav.read_bytes())
    data[-100] ^= 0xFF
    wav.write_bytes(bytes(data))
    (copy / "ben-u1.mouth.npy").unlink()
    problems = StimulusSet.load(copy, verify=False).verify()
    assert len(problems) == 2
    assert problems[0].startswith(f"{wav}: SHA-256 mismatch")
    assert problems[1] == f"{copy / 'ben-u1.mouth.npy'}: missing"
    with pytest.raises(SessionError, match=r"amy-u1\.wav: SHA-256 mismatch .*\(and 1 more\)"):
        StimulusSet.load(copy)
    # a rebuild repairs exactly the damaged stimuli; synthesis is deterministic, so
    # the same bytes come back and the noises made from them stay
    expected = StimulusSet.load(copy, verify=False).get("amy-u1").sha256
    fixed = build_stimuli(requests, copy, base_dir=base_dir, progress=False)
    assert set(fixed.rebuilt) == {"amy-u1", "ben-u1"}
    assert fixed.get("amy-u1").sha256 == expected
    assert StimulusSet.load(copy).verify() == []


def test_missing_or_corrupt_manifest(tmp_path: Path, copy: Path) -> None:
    with pytest.raises(SessionError, match=r"stimuli\.json does not exist.*avlab stimuli build"):
        StimulusSet.load(tmp_path)
    with pytest.raises(KeyError, match="no stimulus 'nope'.*known: amy-u1"):
        StimulusSet.load(copy).get("nope")
    (copy / MANIFEST_NAME).write_text('{"format": "avlab-stimuli", "stimuli": [')
    with pytest.raises(SessionError, match=rf"{copy / MANIFEST_NAME} is corrupt.*--force"):
        StimulusSet.load(copy)


@pytest.mark.parametrize(
    ("voice", "match"),
    [
        (Voice(engine="flite", name="nosuch"), r"flite voice 'nosuch' is not installed.*flite"),
        (Voice(engine="festival", name="voice_rab_diphone"),
         r"festival voice 'voice_rab_diphone'.*festvox-rablpc16k"),
        (Voice(engine="festival", name="cmu_us_awb_arctic_hts"), r"festvox-\* package"),
        (Voice(engine="espeak-ng", name="xx-nope"), r"espeak-ng voice 'xx-nope'.*espeak-ng-data"),
        (Voice(engine="espeak-ng", name="mb-de1"), r"mbrola-de1"),
        (Voice(engine="espeak-ng", name="en-us+zz9"), r"variant '\+zz9'.*\+m3"),
        (Voice(engine="flite", name=""), r"flite voice is empty.*slt"),
    ],
)  # fmt: skip
def test_missing_voice_names_the_package(voice: Voice, match: str) -> None:
    with pytest.raises(StimulusError, match=match):
        check_engine_voice(voice)


def test_missing_engine_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = shutil.which
    monkeypatch.setattr(tts_module.shutil, "which", lambda p: None if p == "text2wave" else real(p))
    req = StimulusRequest(stim_id="x", talker="t", text="hello",
                          voice=Voice(engine="festival", name="kal_diphone"))  # fmt: skip
    with pytest.raises(StimulusError, match=r"festival is not installed.*apt-get install festival"):
        build_stimuli([req], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()  # failed before any work


def test_bad_requests(tmp_path: Path) -> None:
    r = StimulusRequest(stim_id="x", talker="t", text="hi", voice=Voice(engine="espeak-ng"))
    with pytest.raises(ValueError, match="duplicate stimulus ids: x"):
        build_stimuli([r, r], tmp_path, progress=False)
    with pytest.raises(ValueError, match="fps must be between 10 and 60"):
        build_stimuli([r], tmp_path, fps=100, progress=False)
    f = StimulusRequest(stim_id="f", talker="t", file="nope.wav", voice=Voice(engine="file"))
    with pytest.raises(StimulusError, match=rf"speech file {tmp_path / 'nope.wav'} does not exist"):
        build_stimuli([f], tmp_path / "o", base_dir=tmp_path, progress=False)
    g = StimulusRequest(stim_id="g", talker="t", voice=Voice(engine="file"))
    with pytest.raises(StimulusError, match="engine 'file' but no file"):
        build_stimuli([g], tmp_path / "o", progress=False)


def test_without_speech_only_white_noise(copy: Path) -> None:
    # An empty request list (e.g. a conversation protocol): the old stimuli and the
    # noises made from speech are removed, white noise stays.
    empty = build_stimuli([], copy, progress=False)
    assert len(empty) == 0 and empty.rebuilt == ()
    assert empty.noise("white").is_file()
    with pytest.raises(KeyError, match="no 'babble' noise.*built: white"):
        empty.noise("babble")
    assert sorted(p.name for p in copy.rglob("*") if p.is_file()) == ["stimuli.json", "white.wav"]
