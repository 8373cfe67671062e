"""Eye tracking as BIDS physio: file format, time line, eye events, screen mapping, validator."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from avlab.bids import physio as physio_mod
from avlab.bids.models import BidsRun, LabInfo
from avlab.bids.physio import (
    IvtConfig,
    ScreenGeometry,
    read_physio,
    read_physioevents,
    write_eyetracking,
)
from avlab.bids.timeline import Timeline
from avlab.session import Session
from avlab.sim.gaze import GAZE_CHANNELS
from avlab.sim.participant import screen_to_scene

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "session"))
sys.path.insert(0, str(HERE))

from sessionfactory import Recorded, default_streams, write_session  # noqa: E402
from sync.synthetic import make_clock, make_stream  # noqa: E402

FS = 200.0
DURATION_S = 40.0
FIX_S = 0.5  # gaze jumps between the two faces every 0.5 s (30 ms ramps)
RAMP_S = 0.03
BLINKS_S = (2.2, 7.2, 12.2, 17.2, 22.2)  # 150 ms each, inside fixations
LOST = slice(3050, 3054)  # samples without gaze (20 ms, inside a fixation)
WINDOW = (1280, 720)
SCREEN = ScreenGeometry(size_px=WINDOW, size_m=(0.6, 0.3375), distance_m=0.7)
RUN = BidsRun(folder=Path("x"), subject="01", session="01", task="tiny", run="01")
COLUMNS = ["timestamp", "x_coordinate", "y_coordinate", "pupil_left", "pupil_right", "blink"]


def _planted(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaze on screen (height units, y up) and the recorded samples (scene px, pupils, blink)."""
    rng = np.random.default_rng(5)
    t = np.arange(n) / FS
    k = np.floor(t / FIX_S + 1e-9).astype(int)
    side = np.where(k % 2 == 0, -0.45, 0.45)
    frac = np.clip((t - k * FIX_S) / RAMP_S, 0.0, 1.0)
    xh = np.where(k > 0, -side + 2 * side * frac, side)
    screen = np.column_stack([xh, np.full(n, 0.05)]) + rng.normal(0, 0.0007, (n, 2))
    data = np.zeros((n, 5))
    data[:, :2] = screen_to_scene(screen)
    data[:, 2] = 3.5 + rng.normal(0, 0.02, n)
    data[:, 3] = 3.4 + rng.normal(0, 0.02, n)
    for b in BLINKS_S:
        data[int(round(b * FS)) : int(round((b + 0.15) * FS)), 4] = 1.0
    data[LOST, :2] = np.nan
    return screen, data.astype(np.float32)


def _gaze_xml(simulated: bool) -> str:
    chans = "".join(
        f"<channel><label>{lb}</label><unit>{u}</unit><type>{t}</type></channel>"
        for lb, u, t in GAZE_CHANNELS
    )
    sim = "<avlab_sim><run_id>t</run_id><kind>Gaze</kind></avlab_sim>" if simulated else ""
    return (
        "<?xml version='1.0'?><info><name>G</name><type>Gaze</type><hostname>simhost</hostname>"
        f"<desc><manufacturer>avlab-sim</manufacturer><channels>{chans}</channels><acquisition>"
        f"<camera_width>1600</camera_width><camera_height>1200</camera_height></acquisition>"
        f"{sim}</desc></info>"
    )


def _gaze_stream(name: str, seed: int) -> tuple[Recorded, np.ndarray]:
    synth = make_stream(
        make_clock("device", name=name, srate=FS, device_offset_s=-5000.0, drift_ppm=150),
        duration_s=DURATION_S,
        offset_every_s=1.0,
        offset_noise_s=5e-4,
        seed=seed,
    )
    screen, data = _planted(synth.stamps.size)
    labels = [c[0] for c in GAZE_CHANNELS]
    return Recorded(name, "Gaze", "float32", "time_echo", synth, data, labels), screen


def _session(folder: Path, *, simulated: bool = True, n_gaze: int = 1) -> tuple[Path, np.ndarray]:
    eeg = next(s for s in default_streams(DURATION_S + 2.0, 0) if s.type == "EEG")
    gazes = [_gaze_stream(f"SimGaze{i}", 13 + i) for i in range(n_gaze)]
    write_session(folder, [eeg, *(g for g, _ in gazes)], truth=False)
    with h5py.File(folder / "session.h5", "r+") as h5:
        for key in h5["streams"]:
            if h5["streams"][key].attrs["type"] == "Gaze":
                h5["streams"][key].attrs["info_xml"] = _gaze_xml(simulated)
    return folder, gazes[0][1]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[Path]]:
    folder, screen = _session(tmp_path_factory.mktemp("phys") / "sim")
    out = folder.parent / "out" / "eeg"
    with Session.open(folder) as s:
        paths = write_eyetracking(
            s, Timeline.from_session(s), RUN, out, lab=LabInfo(), screen=SCREEN
        )
    return folder, screen, paths


def _by_suffix(paths: list[Path], suffix: str) -> Path:
    (hit,) = [p for p in paths if p.name.endswith(suffix)]
    return hit


def test_files_format_and_time_line(sim: tuple[Path, np.ndarray, list[Path]]) -> None:
    folder, _, paths = sim
    stem = RUN.stem()
    assert [p.name for p in paths] == [
        f"{stem}_recording-eye1_physio.tsv.gz",
        f"{stem}_recording-eye1_physio.json",
        f"{stem}_recording-eye1_physioevents.tsv.gz",
        f"{stem}_recording-eye1_physioevents.json",
        f"{stem}_recording-eye1screen_physio.tsv.gz",
        f"{stem}_recording-eye1screen_physio.json",
        f"{stem}_recording-eye1screen_physioevents.tsv.gz",
        f"{stem}_recording-eye1screen_physioevents.json",
    ]
    tsv = paths[0]
    raw = tsv.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[3] & 0x08 == 0  # gzip, no file name stored
    assert int.from_bytes(raw[4:8], "little") == 0  # mtime 0
    first = gzip.decompress(raw).decode().splitlines()[0].split("\t")
    assert len(first) == 6 and all(c == "n/a" or float(c) == float(c) for c in first)  # no header
    meta, cols = read_physio(tsv)
    assert meta["Columns"] == COLUMNS
    assert meta["PhysioType"] == "eyetrack" and meta["RecordedEye"] == "cyclopean"
    assert meta["SampleCoordinateSystem"] == "eye-in-head"
    assert meta["SamplingFrequency"] == FS and meta["TaskName"] == "tiny"
    assert meta["Manufacturer"] == "Pupil Labs"
    assert "diameter" in meta["pupil_left"]["Description"] and meta["pupil_left"]["Units"] == "mm"
    assert meta["StartTime"] == cols["timestamp"][0]
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
        gaze = s.read("Gaze")
    # timestamps are tau of avlab's aligned gaze times, within the %.6f of the file
    np.testing.assert_allclose(cols["timestamp"], tl.tau(gaze.times), rtol=0, atol=5.1e-7)
    assert np.all(np.diff(cols["timestamp"]) > 0)
    ok = np.isfinite(gaze.data[:, 0])
    np.testing.assert_allclose(cols["x_coordinate"][ok], gaze.data[ok, 0], rtol=0, atol=0.0051)
    np.testing.assert_allclose(cols["pupil_right"], gaze.data[:, 3], rtol=0, atol=5.1e-5)
    assert (
        np.isnan(cols["x_coordinate"][LOST]).all() and np.isfinite(cols["pupil_left"][LOST]).all()
    )
    assert int(np.nansum(cols["blink"])) == int(gaze.data[:, 4].sum())
    # nothing host-specific leaks from the LSL XML
    for p in paths:
        text = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        assert b"simhost" not in text and str(folder).encode() not in text


def test_eye_events(sim: tuple[Path, np.ndarray, list[Path]]) -> None:
    _, _, paths = sim
    ev_path = _by_suffix(paths, "eye1_physioevents.tsv.gz")
    meta, ev = read_physioevents(ev_path)
    assert meta["Columns"] == ["onset", "duration", "trial_type", "message"]
    assert meta["OnsetSource"] == "timestamp" and "103 x 77 degree" in meta["Description"]
    _, cols = read_physio(_by_suffix(paths, "eye1_physio.tsv.gz"))
    ts = cols["timestamp"]
    # five blinks, each exactly its planted samples
    blinks = ev.of("blink")
    assert len(blinks) == len(BLINKS_S)
    for (onset, dur), b in zip(blinks, BLINKS_S, strict=True):
        i = int(round(b * FS))
        assert onset == ts[i] and dur == pytest.approx(ts[i + 30] - ts[i], abs=2e-6)
    # one saccade per jump between the faces, covering the middle of the ramp
    n_jumps = int(DURATION_S / FIX_S) - 1
    saccades = ev.of("saccade")
    assert len(saccades) == n_jumps
    mids = ts[(np.arange(1, n_jumps + 1) * FIX_S * FS + 3).astype(int)]
    assert np.all((saccades[:, 0] <= mids) & (mids <= saccades.sum(axis=1)))
    # fixations: one per 0.5 s, each blink splits one; the lost 20 ms are merged over
    assert ev.count("fixation") == n_jumps + 1 + len(BLINKS_S)
    assert np.all(np.diff(ev.onset) > 0) and set(ev.message) == {"n/a"}
    # the screen file carries the same events
    screen_ev = _by_suffix(paths, "eye1screen_physioevents.tsv.gz")
    assert screen_ev.read_bytes() == ev_path.read_bytes()


def test_blocks_and_bytes_do_not_change_the_result(
    sim: tuple[Path, np.ndarray, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, paths = sim
    monkeypatch.setattr(physio_mod, "_BLOCK_ROWS", 777)  # velocity windows across blocks
    with Session.open(folder) as s:
        again = write_eyetracking(
            s, Timeline.from_session(s), RUN, tmp_path, lab=LabInfo(), screen=SCREEN
        )
    assert [p.name for p in again] == [p.name for p in paths]
    for a, b in zip(again, paths, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_screen_mapping_inverts_the_simulation(sim: tuple[Path, np.ndarray, list[Path]]) -> None:
    _, screen, paths = sim
    meta, cols = read_physio(_by_suffix(paths, "eye1screen_physio.tsv.gz"))
    assert meta["SampleCoordinateSystem"] == "gaze-on-screen"
    assert "1280x720" in meta["x_coordinate"]["Description"]
    w, h = WINDOW
    truth = np.column_stack([screen[:, 0] * h + w / 2, h / 2 - screen[:, 1] * h])
    ok = np.isfinite(cols["x_coordinate"])
    err = np.hypot(cols["x_coordinate"] - truth[:, 0], cols["y_coordinate"] - truth[:, 1])[ok]
    assert err.max() < 0.5 and np.median(err) < 0.01
    # the left face on a 1280 x 720 window: x = 640 - 0.45 * 720
    assert np.median(cols["x_coordinate"][10:90]) == pytest.approx(640 - 0.45 * 720, abs=1.0)


def test_real_session_two_trackers_no_screen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, _ = _session(tmp_path / "real", simulated=False, n_gaze=2)
    with Session.open(folder) as s, caplog.at_level(logging.WARNING, logger="avlab"):
        paths = write_eyetracking(
            s, Timeline.from_session(s), RUN, tmp_path / "eeg", lab=LabInfo(), screen=SCREEN
        )
    names = [p.name.split("_recording-")[1] for p in paths]
    assert names == [
        "eye1_physio.tsv.gz", "eye1_physio.json", "eye1_physioevents.tsv.gz",
        "eye1_physioevents.json", "eye2_physio.tsv.gz", "eye2_physio.json",
        "eye2_physioevents.tsv.gz", "eye2_physioevents.json",
    ]  # fmt: skip
    assert caplog.text.count("no scene-to-screen mapping was recorded") == 2
    meta = json.loads(paths[1].read_text())
    assert "Simulated" not in meta["EyeTrackingMethod"]


def test_simulated_without_screen_size_skips_screen_file(
    sim: tuple[Path, np.ndarray, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, _, _ = sim
    screen = ScreenGeometry(size_px=WINDOW, size_m=None, distance_m=0.7)
    with Session.open(folder) as s, caplog.at_level(logging.WARNING, logger="avlab"):
        paths = write_eyetracking(
            s, Timeline.from_session(s), RUN, tmp_path, lab=LabInfo(), screen=screen
        )
    assert not any("screen" in p.name for p in paths) and len(paths) == 4
    assert "screen size and distance are unknown" in caplog.text


def test_plain_gaze_stream_and_ivt_options(tmp_path: Path) -> None:
    # the session factory's gaze: labels x, y, pupil, no LSL metadata, no blink channel
    folder = write_session(tmp_path / "plain", default_streams(20.0, 0), truth=False)
    with Session.open(folder) as s:
        paths = write_eyetracking(
            s, Timeline.from_session(s), RUN, tmp_path / "eeg", lab=LabInfo(), screen=None,
            ivt=IvtConfig(threshold=5000.0, unit="px/s"),
        )  # fmt: skip
    meta, cols = read_physio(paths[0])
    assert meta["Columns"] == ["timestamp", "x_coordinate", "y_coordinate", "pupil_size"]
    assert cols["timestamp"].size == 4000
    with pytest.raises(ValueError, match="unit='deg'"):
        IvtConfig(unit="deg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold=0"):
        IvtConfig(threshold=0)


def _validator(root: Path) -> dict:
    bids_validator_deno = pytest.importorskip("bids_validator_deno")
    deno = pytest.importorskip("deno")
    bundle = Path(bids_validator_deno.__file__).with_name("bids-validator.js")
    cmd = [deno.find_deno_bin(), "run", "--allow-read", "--allow-env", "--no-prompt",
           str(bundle), str(root), "--format", "json"]  # fmt: skip
    env = {**os.environ, "DENO_NO_UPDATE_CHECK": "1", "DENO_NO_PROMPT": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    return json.loads(proc.stdout)


def test_official_validator_accepts_the_physio_files(
    sim: tuple[Path, np.ndarray, list[Path]], tmp_path: Path
) -> None:
    from _tiny import build_tiny

    folder, _, _ = sim
    tiny = build_tiny(tmp_path / "bids", manifest=False, gaze=False)
    with Session.open(folder) as s:
        paths = write_eyetracking(
            s, Timeline.from_session(s), RUN, tiny.eeg_dir, lab=LabInfo(), screen=SCREEN
        )
    assert len(paths) == 8

    def issues() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        found = _validator(tiny.root)["issues"]["issues"]
        errors = [(i["code"], i.get("location", "")) for i in found if i["severity"] == "error"]
        ours = [
            (i["code"], i.get("location", "")) for i in found if "physio" in i.get("location", "")
        ]
        return errors, ours

    # the validator does look at them: gaze-on-screen needs the screen in events.json
    errors, _ = issues()
    assert [(c, loc.rsplit("_", 2)[-2]) for c, loc in errors] == [
        ("INCOMPLETE_STIMULUS_PRESENTATION", "recording-eye1screen")
    ]
    events = json.loads(tiny.events_json.read_text())
    events["StimulusPresentation"] = {
        "ScreenDistance": SCREEN.distance_m, "ScreenOrigin": ["top", "left"],
        "ScreenResolution": list(WINDOW), "ScreenSize": list(SCREEN.size_m or ()),
    }  # fmt: skip
    tiny.events_json.write_text(json.dumps(events, indent=2))
    errors, ours = issues()
    assert errors == [] and ours == []  # no error at all, and no warning on our files
