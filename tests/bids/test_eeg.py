"""EEG of a BIDS run: streamed BrainVision/EDF, mne-bids copy path, sidecars, validator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import h5py
import mne
import numpy as np
import pytest
from mne_bids import BIDSPath, read_raw_bids

from avlab.bids import eeg as eeg_mod
from avlab.bids.eeg import EegFormatError, EegOutput, stream_edf, write_eeg
from avlab.bids.models import BIDS_VERSION, BidsRun, LabInfo
from avlab.bids.timeline import Timeline
from avlab.session import Session
from avlab.sim.montage import HEAD_RADIUS_MM, montage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "session"))

from sessionfactory import Recorded, default_streams, write_session  # noqa: E402
from sync.synthetic import make_clock, make_stream  # noqa: E402

LAB = LabInfo(
    line_freq_hz=60.0, eeg_reference="Cz", eeg_ground="AFz", cap_manufacturer="EasyCap",
    cap_model="actiCAP 64", institution_name="Test Lab", amplifier_model="SimAmp 8",
)  # fmt: skip
#: (label, LSL type, LSL unit, has a position)
CHANNELS = [
    *((f"E{i}", "EEG", "microvolts", True) for i in range(6)),
    ("VEOG", "EOG", "microvolts", False),
    ("Temp", "AUX", "", False),
]


def _info_xml(n_eeg: int) -> str:
    _, pos = montage(n_eeg)
    chans = []
    for i, (label, ctype, unit, has_pos) in enumerate(CHANNELS):
        loc = ""
        if has_pos:
            x, y, z = pos[i] * HEAD_RADIUS_MM
            loc = f"<location><X>{x:.2f}</X><Y>{y:.2f}</Y><Z>{z:.2f}</Z></location>"
        chans.append(
            f"<channel><label>{label}</label><unit>{unit}</unit><type>{ctype}</type>{loc}</channel>"
        )
    return (
        "<?xml version='1.0'?><info><name>SimEEG</name><type>EEG</type><hostname>simhost"
        "</hostname><desc><manufacturer>avlab-sim</manufacturer><channels>"
        + "".join(chans)
        + "</channels></desc></info>"
    )


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of 8-channel EEG at 1000 Hz with a 250-sample gap, typed and positioned."""
    folder = write_session(
        tmp_path_factory.mktemp("eeg") / "sub-01_ses-01_2026-11-23T10-15-00",
        default_streams(duration_s=20.0, eeg_gap=250),
    )
    with h5py.File(folder / "session.h5", "r+") as f:
        g = f["streams"]["00_SimEEG"]
        g.attrs["info_xml"] = _info_xml(6)
        g.attrs["channel_labels"] = json.dumps([c[0] for c in CHANNELS])
    return folder


def _run(folder: Path) -> BidsRun:
    return BidsRun(folder=folder, subject="01", session="01", task="listen", run="01")


def _bids_path(root: Path) -> BIDSPath:
    return BIDSPath(subject="01", session="01", task="listen", run="01", datatype="eeg", root=root)


def _read_bids(root: Path) -> mne.io.BaseRaw:
    with warnings.catch_warnings():
        # events.tsv is written by avlab.bids.events, not by write_eeg
        warnings.filterwarnings("ignore", "Did not find any events.tsv", RuntimeWarning)
        return read_raw_bids(_bids_path(root))


def _convert(folder: Path, root: Path, **kw: object) -> tuple[EegOutput, Timeline, np.ndarray]:
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
        data = s.read("EEG", aligned=False).data
        out = write_eeg(s, tl, _run(folder), root, lab=LAB, task_description="Listen.", **kw)
    return out, tl, data


def _expected(tl: Timeline, data: np.ndarray) -> np.ndarray:
    full = np.zeros((tl.n_file_samples, data.shape[1]), dtype=np.float32)
    full[tl.file_index] = data
    return full


def test_brainvision_round_trip(session_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "bids"
    out, tl, data = _convert(session_dir, root)
    assert tl.pads and tl.pads[0][1] == 250
    assert (out.n_channels, out.n_file_samples, out.sfreq) == (8, tl.n_file_samples, 1000.0)
    assert out.duration_s == pytest.approx(tl.n_file_samples / 1000.0)
    assert not list(root.glob(".avlab-tmp-*"))
    names = sorted(p.name for p in out.files)
    assert names == sorted(
        [f"sub-01_ses-01_task-listen_run-01_{s}" for s in
         ("eeg.vhdr", "eeg.vmrk", "eeg.eeg", "eeg.json", "channels.tsv")]
        + [f"sub-01_ses-01_space-CapTrak_{s}" for s in
           ("electrodes.tsv", "electrodes.json", "coordsystem.json")]
    )  # fmt: skip

    raw = _read_bids(root)
    got = raw.get_data()
    want = _expected(tl, data).astype(np.float64).T
    volts = np.array([c[2] == "microvolts" for c in CHANNELS])
    want[volts] *= 1e-6  # µV channels come back in V; the unit-less one as is
    assert np.array_equal(got, want)  # bit-exact: float32 µV, resolution 1.0
    # pads: zeros exactly where the time line put them
    for k, n_pad in tl.pads:
        start = int(tl.file_index[k]) - n_pad
        assert not got[:, start : start + n_pad].any()
        assert got[:, start - 1].any() and got[:, start + n_pad].any()
    assert raw.get_channel_types() == ["eeg"] * 6 + ["eog", "misc"]
    assert raw.info["line_freq"] == 60.0
    assert raw.info["meas_date"] == tl.acq_time  # to the microsecond
    assert len(raw.annotations) == 0
    pos = raw.get_montage().get_positions()
    assert pos["coord_frame"] == "head"
    _, unit_pos = montage(6)
    for i in range(6):
        np.testing.assert_allclose(
            pos["ch_pos"][f"E{i}"], np.round(unit_pos[i] * HEAD_RADIUS_MM, 2) / 1000, atol=1e-9
        )

    eeg_dir = root / "sub-01" / "ses-01" / "eeg"
    lines = (eeg_dir / "sub-01_ses-01_task-listen_run-01_channels.tsv").read_text().splitlines()
    rows = [ln.split("\t")[:3] for ln in lines[1:]]
    assert rows == [[c[0], t, u] for c, t, u in zip(
        CHANNELS, ["EEG"] * 6 + ["EOG", "MISC"], ["µV"] * 7 + ["n/a"], strict=True
    )]  # fmt: skip
    side = json.loads((eeg_dir / "sub-01_ses-01_task-listen_run-01_eeg.json").read_text())
    assert side["PowerLineFrequency"] == 60.0
    assert side["SamplingFrequency"] == 1000.0
    assert (side["EEGReference"], side["EEGGround"]) == ("Cz", "AFz")
    assert (side["CapManufacturer"], side["CapManufacturersModelName"]) == ("EasyCap", "actiCAP 64")
    assert side["Manufacturer"] == "avlab-sim"  # lab says n/a: the stream's desc wins
    assert side["ManufacturersModelName"] == "SimAmp 8"
    assert side["SoftwareVersions"].startswith("avlab ")
    assert side["SoftwareFilters"] == "n/a"
    assert side["TaskDescription"] == "Listen."
    assert "Instructions" not in side
    assert (side["EEGChannelCount"], side["EOGChannelCount"], side["MISCChannelCount"]) == (6, 1, 1)
    assert "MiscChannelCount" not in side
    coord = json.loads((eeg_dir / "sub-01_ses-01_space-CapTrak_coordsystem.json").read_text())
    assert coord["EEGCoordinateSystem"] == "CapTrak"
    assert "not digitized" in coord["EEGCoordinateSystemDescription"]
    assert coord["AnatomicalLandmarkCoordinates"]["NAS"] == [0.0, 0.095, 0.0]
    scans = (root / "sub-01" / "ses-01" / "sub-01_ses-01_scans.tsv").read_text().splitlines()
    assert scans[1].split("\t") == [
        "eeg/sub-01_ses-01_task-listen_run-01_eeg.vhdr",
        tl.acq_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    ]
    # nothing host-specific or from the session folder's name
    for p in root.rglob("*"):
        if p.is_file() and p.suffix != ".eeg":
            text = p.read_text(encoding="utf-8")
            for secret in ("simhost", "testhost", session_dir.name, str(tmp_path)):
                assert secret not in text, (p, secret)


def test_edf_round_trip(session_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "bids"
    out, tl, data = _convert(session_dir, root, fmt="EDF")
    edf = root / "sub-01" / "ses-01" / "eeg" / "sub-01_ses-01_task-listen_run-01_eeg.edf"
    assert edf in out.files
    n_rec = -(-tl.n_file_samples // 1000)
    assert out.n_file_samples == n_rec * 1000  # whole 1-s records
    raw = _read_bids(root)
    got = raw.get_data()
    want = _expected(tl, data).astype(np.float64)
    want = np.concatenate([want, np.repeat(want[-1:], out.n_file_samples - len(want), 0)]).T
    ns = len(CHANNELS)
    header = edf.read_bytes()[: 256 * (ns + 1)]
    at = 256 + (16 + 80 + 8) * ns  # signal headers: label, transducer, unit, then ranges
    pmin = np.array([float(header[at + 8 * i : at + 8 * i + 8]) for i in range(ns)])
    at += 8 * ns
    pmax = np.array([float(header[at + 8 * i : at + 8 * i + 8]) for i in range(ns)])
    half_step = (pmax - pmin) / 65535 / 2
    scale = np.where([c[2] == "microvolts" for c in CHANNELS], 1e-6, 1.0)
    err = np.abs(got / scale[:, None] - want).max(axis=1)
    assert np.all(err <= half_step * (1 + 1e-6)), (err, half_step)
    assert np.all(pmin <= want.min(axis=1)) and np.all(pmax >= want.max(axis=1))
    assert raw.info["meas_date"] == tl.acq_time  # scans.tsv keeps the microseconds
    assert raw.get_channel_types() == ["eeg"] * 6 + ["eog", "misc"]


@pytest.mark.parametrize("fmt", ["BrainVision", "EDF"])
def test_daysback_shifts_date(session_dir: Path, tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "bids"
    _, tl, _ = _convert(session_dir, root, fmt=fmt, daysback=40_000)
    shifted = tl.acq_time - timedelta(days=40_000)
    assert shifted.year < 1925
    assert _read_bids(root).info["meas_date"] == shifted
    scans = (root / "sub-01" / "ses-01" / "sub-01_ses-01_scans.tsv").read_text()
    assert shifted.strftime("%Y-%m-%dT%H:%M:%S.%fZ") in scans
    eeg_dir = root / "sub-01" / "ses-01" / "eeg"
    for p in eeg_dir.iterdir():
        if p.suffix in (".vhdr", ".vmrk", ".json", ".tsv"):
            assert tl.acq_time.strftime("%Y%m%d") not in p.read_text(encoding="utf-8")
    if fmt == "EDF":
        assert (
            b"2026" not in (eeg_dir / "sub-01_ses-01_task-listen_run-01_eeg.edf").read_bytes()[:256]
        )
    else:
        vmrk = (eeg_dir / "sub-01_ses-01_task-listen_run-01_eeg.vmrk").read_text()
        assert shifted.strftime("%Y%m%d%H%M%S%f") in vmrk


def test_rewrite_never_preloads(
    session_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: mne.io.BaseRaw, *a: object, **k: object) -> None:
        raise AssertionError("load_data called: the recording would be held in memory")

    monkeypatch.setattr(mne.io.BaseRaw, "load_data", refuse)
    root = tmp_path / "bids"
    first, _, _ = _convert(session_dir, root)
    second, _, _ = _convert(session_dir, root)  # existing target: no FileExistsError, no preload
    assert [p.name for p in first.files] == [p.name for p in second.files]
    third, _, _ = _convert(session_dir, root, fmt="EDF")  # format switch replaces the data
    eeg_dir = root / "sub-01" / "ses-01" / "eeg"
    assert not list(eeg_dir.glob("*_eeg.vhdr")) and not list(eeg_dir.glob("*_eeg.eeg"))
    scans = (root / "sub-01" / "ses-01" / "sub-01_ses-01_scans.tsv").read_text().splitlines()
    assert len(scans) == 2 and scans[1].startswith("eeg/sub-01_ses-01_task-listen_run-01_eeg.edf")
    assert not list(root.glob(".avlab-tmp-*"))


def test_staging_removed_on_error(
    session_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mne_bids

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(mne_bids, "write_raw_bids", boom)
    root = tmp_path / "bids"
    with pytest.raises(RuntimeError, match="disk full"):
        _convert(session_dir, root)
    assert root.is_dir() and not list(root.glob(".avlab-tmp-*"))


def test_edf_refuses_what_it_cannot_store(session_dir: Path, tmp_path: Path) -> None:
    with Session.open(session_dir) as s:
        tl = Timeline.from_session(s)
        meta = eeg_mod.read_eeg_meta(s, s.stream("EEG"))
        long = eeg_mod.EegMeta(
            channels=[eeg_mod.EegChannel("A-very-long-label-17", "eeg", "µV", None)]
            + meta.channels[1:],
            fiducials_mm={}, manufacturer="", model="", serial="",
        )  # fmt: skip
        with pytest.raises(EegFormatError, match="16 characters.*A-very-long-label-17"):
            stream_edf(s, tl, tmp_path / "x.edf", long)
        odd = Timeline(tl.fs + 0.5, tl.eeg_times, tl.file_index, tl.n_file_samples, [],
                       tl.acq_time)  # fmt: skip
        with pytest.raises(EegFormatError, match="whole number of samples per second"):
            stream_edf(s, odd, tmp_path / "y.edf", meta)
        with pytest.raises(EegFormatError, match="unknown EEG format 'FIF'"):
            write_eeg(s, tl, _run(session_dir), tmp_path, lab=LAB, fmt="FIF")  # type: ignore[arg-type]


def test_pads_at_block_boundaries(session_dir: Path) -> None:
    with Session.open(session_dir) as s:
        tl = Timeline.from_session(s)
        info = s.stream("EEG")
        data = s.read(info, aligned=False).data
        pads = [(100, 3), (150, 2), (250, 1), (251, 250)]  # on, inside, on, right after
        blocks = list(eeg_mod._file_blocks(s, info, replace(tl, pads=pads), rows=50))
    got = np.concatenate(blocks)
    assert max(len(b) for b in blocks) <= 50
    want = data
    for k, n_pad in reversed(pads):
        want = np.insert(want, k, np.zeros((n_pad, data.shape[1]), np.float32), axis=0)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_metadata_fiducials_and_device(session_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sess"
    shutil.copytree(session_dir, folder)
    with h5py.File(folder / "session.h5", "r+") as f:
        g = f["streams"]["00_SimEEG"]
        xml = g.attrs["info_xml"].replace("<manufacturer>avlab-sim</manufacturer>", (
            "<acquisition><manufacturer>Acme</manufacturer><model>A8</model>"
            "<serial_number>SN-42</serial_number></acquisition><fiducials>"
            + "".join(
                f"<fiducial><label>{n}</label><location><X>{x}</X><Y>{y}</Y><Z>{z}</Z>"
                "</location></fiducial>"
                for n, (x, y, z) in {"Nasion": (0, 90, -10), "LPA": (-80, 0, -20),
                                     "RPA": (80, 0, -20)}.items()
            ) + "</fiducials>"
        ))  # fmt: skip
        g.attrs["info_xml"] = xml
    root = tmp_path / "bids"
    _convert(folder, root)
    eeg_dir = root / "sub-01" / "ses-01" / "eeg"
    side = json.loads((eeg_dir / "sub-01_ses-01_task-listen_run-01_eeg.json").read_text())
    assert (side["Manufacturer"], side["DeviceSerialNumber"]) == ("Acme", "SN-42")
    assert side["ManufacturersModelName"] == "SimAmp 8"  # the lab's value wins
    coord = json.loads((eeg_dir / "sub-01_ses-01_space-CapTrak_coordsystem.json").read_text())
    assert "fiducials given in the stream" in coord["EEGCoordinateSystemDescription"]
    assert "simulator" not in coord["EEGCoordinateSystemDescription"]
    # head frame from the fiducials: origin between the ears (z = -20 mm), y to the nasion
    np.testing.assert_allclose(coord["AnatomicalLandmarkCoordinates"]["LPA"], [-0.08, 0, 0],
                               atol=1e-9)  # fmt: skip
    pos = _read_bids(root).get_montage().get_positions()["ch_pos"]
    with Session.open(folder) as s:
        meta = eeg_mod.read_eeg_meta(s, s.stream("EEG"))
    e0 = np.asarray(meta.channels[0].pos_mm) / 1000 - [0, 0, -0.02]
    assert np.linalg.norm(pos["E0"]) == pytest.approx(np.linalg.norm(e0), abs=1e-6)


def test_official_validator(session_dir: Path, tmp_path: Path) -> None:
    import bids_validator_deno
    import deno

    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({
        "Name": "avlab EEG test", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
        "License": "CC0", "Authors": ["A. Tester", "B. Tester"],
    }))  # fmt: skip
    (root / "README").write_text("A tiny dataset written by avlab's EEG tests. " * 5 + "\n")
    _convert(session_dir, root, instructions="Listen to the talker on the cued side.")
    bundle = Path(bids_validator_deno.__file__).with_name("bids-validator.js")
    cmd = [deno.find_deno_bin(), "run", "--allow-read", "--allow-env", "--no-prompt",
           str(bundle), str(root), "--format", "json"]  # fmt: skip
    env = {**os.environ, "DENO_NO_UPDATE_CHECK": "1", "DENO_NO_PROMPT": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    issues = json.loads(proc.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert errors == [], errors
    assert proc.returncode == 0
    codes = sorted({f"{i['code']}/{i.get('subCode', '')} {i['location']}" for i in issues})
    print("\n".join(["validator warnings:", *codes]))  # noqa: T201
    assert all(i["location"].endswith(("_eeg.vhdr", "_eeg.vmrk", "_eeg.eeg",
                                       "dataset_description.json")) for i in issues)  # fmt: skip


_CHILD = textwrap.dedent(
    """
    import resource, sys, time
    from pathlib import Path
    from avlab.bids.eeg import write_eeg
    from avlab.bids.models import BidsRun, LabInfo
    from avlab.bids.timeline import Timeline
    from avlab.session import Session
    folder, root = Path(sys.argv[1]), Path(sys.argv[2])
    t0 = time.perf_counter()
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
        t1 = time.perf_counter()
        run = BidsRun(folder=folder, subject="01", session="01", task="rest", run="01")
        out = write_eeg(s, tl, run, root, lab=LabInfo())
    t2 = time.perf_counter()
    # VmHWM: this program's peak. ru_maxrss would also count the parent's (pytest's)
    # resident pages at fork time, which Linux carries across exec.
    status = Path("/proc/self/status")
    hwm = [ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:")]
    kb = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss = kb / 1024
    print(out.n_channels, out.n_file_samples, f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", f"{rss:.0f}")
    """
)


def test_five_minutes_of_64_channels_in_bounded_memory(tmp_path: Path) -> None:
    n_ch, fs, dur = 64, 1000.0, 300.0
    synth = make_stream(
        make_clock("arrival", name="BigEEG", srate=fs, host_offset_s=37.0, chunk_size=10),
        duration_s=dur,
        seed=5,
    )
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((synth.stamps.size, n_ch), dtype=np.float32) * 20).astype("<f4")
    folder = write_session(
        tmp_path / "big",
        [Recorded("BigEEG", "EEG", "float32", "lsl_time_correction", synth, data,
                  [f"E{i + 1}" for i in range(n_ch)])],
        truth=False,
    )  # fmt: skip
    del data
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(tmp_path / "bids")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    n, samples, t_timeline, t_write, rss = proc.stdout.split()
    print(f"5 min 64 ch @ 1 kHz: time line {t_timeline} s, write_eeg {t_write} s, "  # noqa: T201
          f"peak RSS {rss} MB")  # fmt: skip
    assert (int(n), int(samples)) == (n_ch, int(dur * fs))
    assert float(rss) < 500.0
    eeg = tmp_path / "bids" / "sub-01" / "ses-01" / "eeg" / "sub-01_ses-01_task-rest_run-01_eeg.eeg"
    assert eeg.stat().st_size == int(dur * fs) * n_ch * 4
