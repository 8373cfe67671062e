"""Recorder against real LSL outlets in a subprocess: counts, stops, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from avlab import _format as fmt
from avlab.errors import OutputError, StreamNotFoundError
from avlab.record import record


def _session(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


def test_exact_counts_numeric_and_string(tmp_path, uid, outlets, stream_cfg):
    eeg = stream_cfg(f"{uid}EEG", channels=8, srate=500.0, n=1500, chunk=16)
    mk = stream_cfg(f"{uid}Mk", type="Markers", channels=1, srate=0.0, format="string", n=25)
    aux = stream_cfg(f"{uid}Aux", type="AUX", channels=2, srate=100.0, format="int16", n=300)
    p = outlets([eeg, mk, aux], delay=1.0, linger=8.0)
    stop = threading.Event()
    statuses = []

    def on_status(rows):
        statuses.append(rows)
        if all(r.samples >= want for r, want in zip(rows, (1500, 25, 300), strict=True)):
            stop.set()

    summary = record(
        tmp_path,
        streams=[f"{uid}EEG", f"{uid}Mk", f"{uid}Aux"],
        wait_s=5,
        duration=15,
        stop_event=stop,
        status_callback=on_status,
    )
    assert p.stdout.readline().split() == ["sent", "1500", "25", "300"]
    assert summary.status == fmt.STATUS_COMPLETE
    assert [s.samples for s in summary.streams] == [1500, 25, 300]
    assert [s.gaps for s in summary.streams] == [0, 0, 0]
    assert statuses and abs(summary.streams[0].effective_rate - 500.0) < 0.01
    with h5py.File(summary.path / fmt.SESSION_FILE, "r") as f:
        assert f.attrs["status"] == "complete"
        g = f["streams"][f"{uid}EEG"]
        data = g[fmt.DATA][()]
        assert data.shape == (1500, 8) and data.dtype == np.float32
        np.testing.assert_array_equal(data[:, 0], np.arange(1500))  # zero loss, in order
        ts = g[fmt.TIME_STAMPS][()]
        np.testing.assert_allclose(np.diff(ts), 1 / 500.0, atol=1e-6)
        assert g[fmt.CLOCK_OFFSETS].shape[0] >= 2
        assert abs(g[fmt.CLOCK_OFFSETS][0, 1]) < 0.01  # same host
        assert g.attrs["clock_method"] == "lsl_time_correction"
        assert g.attrs["channel_format"] == "float32" and g.attrs["nominal_srate"] == 500.0
        chunks = g[fmt.CHUNKS][()]
        assert chunks[:, 1].sum() == 1500
        m = f["streams"][f"{uid}Mk"][fmt.DATA][()]
        assert [v.decode() for v in m[:, 0]] == [f"m{i}" for i in range(25)]
        a = f["streams"][f"{uid}Aux"][fmt.DATA][()]
        assert a.dtype == np.int16
        np.testing.assert_array_equal(a[:, 0], np.arange(300))
    log = [json.loads(x) for x in (summary.path / fmt.LOG_FILE).read_text().splitlines()]
    assert {"start", "close"} <= {r["event"] for r in log}


def test_duration_stop(tmp_path, uid, outlets, stream_cfg):
    outlets([stream_cfg(f"{uid}E", n=100000)], delay=0.0, linger=0.0)
    t0 = time.monotonic()
    summary = record(tmp_path, streams=[f"{uid}E"], wait_s=5, duration=2.0)
    assert time.monotonic() - t0 < 8
    assert summary.status == "complete"
    assert 1.5 * 250 < summary.streams[0].samples < 3.0 * 250


def test_missing_stream_error_and_exit_code(tmp_path, uid, outlets, stream_cfg, avlab_cmd):
    outlets([stream_cfg(f"{uid}Here")], delay=0.0, linger=10.0)
    with pytest.raises(StreamNotFoundError, match=rf"'{uid}Nope' not found.*{uid}Here"):
        record(tmp_path, streams=[f"{uid}Nope"], wait_s=1.0)
    assert list(tmp_path.iterdir()) == []
    r = subprocess.run(
        avlab_cmd("record", str(tmp_path), "--stream", f"{uid}Nope", "--wait", "0.5"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == StreamNotFoundError.exit_code == 3
    assert f"{uid}Nope" in r.stderr and "not found" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unwritable_output(tmp_path, uid):
    with pytest.raises(OutputError, match=r"does not exist"):
        record(tmp_path / "nope", streams=[f"{uid}X"], wait_s=0.1)
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1M", "tmpfs", str(ro)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=rf"{ro} is not writable"):
            record(ro, streams=[f"{uid}X"], wait_s=0.1)
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)


def test_sigterm_stops_cleanly(tmp_path, uid, outlets, stream_cfg, avlab_cmd):
    outlets([stream_cfg(f"{uid}E", n=100000)], delay=0.0, linger=0.0)
    p = subprocess.Popen(
        avlab_cmd("record", str(tmp_path), "-s", f"{uid}E", "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    folder = Path(out.strip())
    with h5py.File(folder / fmt.SESSION_FILE, "r") as f:
        assert f.attrs["status"] == "complete"
        n = f["streams"][f"{uid}E"][fmt.DATA].shape[0]
        np.testing.assert_array_equal(f["streams"][f"{uid}E"][fmt.DATA][:, 0], np.arange(n))
    assert n > 250


def test_disk_full_keeps_data(tmp_path, uid, outlets, stream_cfg, avlab_cmd):
    small = tmp_path / "small"
    small.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(small)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        # 256 ch float32 @ 1000 Hz = 1 MB/s: fills 4 MB in about 4 s
        outlets(
            [stream_cfg(f"{uid}Big", channels=256, srate=1000.0, n=100000, chunk=20)],
            delay=0.0,
            linger=0.0,
        )
        r = subprocess.run(
            avlab_cmd("record", str(small), "-s", f"{uid}Big", "--duration", "30", "--quiet"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == OutputError.exit_code == 5
        assert "disk is full" in r.stderr
        folder = _session(small)
        with h5py.File(folder / fmt.SESSION_FILE, "r", swmr=True) as f:
            assert f.attrs["status"] == "incomplete"
            d = f["streams"][f"{uid}Big"][fmt.DATA]
            n = min(d.shape[0], f["streams"][f"{uid}Big"][fmt.TIME_STAMPS].shape[0])
            assert n > 1000  # the seconds before the disk filled are kept
            np.testing.assert_array_equal(d[: n - 1000, 0], np.arange(n - 1000))
        log = (folder / fmt.LOG_FILE).read_text()
        assert "disk is full" in log
    finally:
        subprocess.run(["umount", str(small)], check=True)
