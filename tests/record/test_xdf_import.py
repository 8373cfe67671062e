"""``avlab import-xdf``: the shared minimal.xdf and a file written by LabRecorder."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pylsl
import pytest
import pyxdf

from avlab import _format as fmt
from avlab.errors import SessionError
from avlab.record import import_xdf

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "xdf"


def _check_against_pyxdf(xdf: Path, folder: Path) -> int:
    streams, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=False, dejitter_timestamps=False)
    with h5py.File(folder / fmt.SESSION_FILE, "r") as f:
        assert f.attrs["status"] == "complete"
        groups = list(f["streams"].values())
        assert len(groups) == len(streams)
        for s in streams:
            (g,) = [
                g
                for g in groups
                if g.attrs["uid"] == s["info"]["uid"][0] and g.attrs["name"] == s["info"]["name"][0]
            ]
            assert g.attrs["clock_method"] == "lsl_time_correction"
            np.testing.assert_array_equal(g[fmt.TIME_STAMPS][()], s["time_stamps"])
            data = g[fmt.DATA][()]
            if g.attrs["channel_format"] == "string":
                assert [[v.decode() for v in row] for row in data] == s["time_series"]
            else:
                np.testing.assert_array_equal(data, s["time_series"])
            off = g[fmt.CLOCK_OFFSETS][()]
            np.testing.assert_array_equal(off[:, 0], s["clock_times"])
            np.testing.assert_array_equal(off[:, 1], s["clock_values"])
    return len(streams)


def test_import_minimal(tmp_path, avlab_cmd):
    src = SHARED / "minimal.xdf"
    if not src.is_file():
        pytest.skip(f"{src} not available")
    folder = import_xdf(src, tmp_path)
    assert _check_against_pyxdf(src, folder) >= 1
    r = subprocess.run(
        avlab_cmd("import-xdf", str(src), str(tmp_path)), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 5 and "already exists" in r.stderr


def test_import_errors(tmp_path):
    with pytest.raises(SessionError, match=r"nope\.xdf not found"):
        import_xdf(tmp_path / "nope.xdf", tmp_path)
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(b"not an xdf file at all")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SessionError, match=r"cannot read XDF file .*bad\.xdf"):
        import_xdf(bad, out)
    assert list(out.iterdir()) == []


def test_import_labrecorder_file(tmp_path, uid):
    labrecorder = pytest.importorskip("labrecorder")
    eeg = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"{uid}E", "EEG", 4, 250, pylsl.cf_float32, f"{uid}E-src")
    )
    mk = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"{uid}M", "Markers", 1, 0, pylsl.cf_string, f"{uid}M-src")
    )
    infos = [pylsl.resolve_byprop("name", n, timeout=5)[0] for n in (f"{uid}E", f"{uid}M")]
    xdf = tmp_path / "lr.xdf"
    with labrecorder.Recording(str(xdf), [i.as_xml() for i in infos]):
        eeg.wait_for_consumers(5)
        mk.wait_for_consumers(5)
        t0 = pylsl.local_clock()
        for k in range(500):
            eeg.push_sample([k, 0, 0, 0], t0 + k / 250)
            if k % 50 == 0:
                mk.push_sample([f"m{k}"])
            if k % 25 == 0:
                time.sleep(0.1)
        time.sleep(0.5)
    out = tmp_path / "out"
    out.mkdir()
    folder = import_xdf(xdf, out)
    assert folder.name == "lr"
    assert _check_against_pyxdf(xdf, folder) == 2
    with h5py.File(folder / fmt.SESSION_FILE, "r") as f:
        e = f["streams"][f"{uid}E"]
        np.testing.assert_array_equal(e[fmt.DATA][:, 0], np.arange(500))
        assert e[fmt.GAPS].shape[0] == 0
        assert e[fmt.CLOCK_OFFSETS].shape[0] >= 1
        assert [v.decode() for v in f["streams"][f"{uid}M"][fmt.DATA][:, 0]] == [
            f"m{k}" for k in range(0, 500, 50)
        ]
