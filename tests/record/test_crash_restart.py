"""kill -9 of a recording, recovery, and re-attaching to a restarted source."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import h5py
import numpy as np
import pylsl
import pytest

from avlab import _format as fmt
from avlab.record import record, recover


def test_kill9_then_swmr_open_and_recover(tmp_path, uid, outlets, stream_cfg, avlab_cmd):
    srate = 500.0
    outlets(
        [
            stream_cfg(f"{uid}E", srate=srate, channels=16, n=100000, chunk=10),
            stream_cfg(f"{uid}M", type="Markers", channels=1, srate=0.0, format="string", n=100000),
        ],
        delay=0.0,
        linger=0.0,
    )
    p = subprocess.Popen(
        avlab_cmd("record", str(tmp_path), "-s", f"{uid}E", "-s", f"{uid}M", "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(5.0)
    t_kill = pylsl.local_clock()
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    (folder,) = list(tmp_path.iterdir())
    h5 = folder / fmt.SESSION_FILE
    with pytest.raises(OSError):
        h5py.File(h5, "r").close()  # still flagged as open for SWMR writing
    with h5py.File(h5, "r", swmr=True) as f:
        assert f.attrs["status"] == "recording"
        g = f["streams"][f"{uid}E"]
        n = min(g[fmt.DATA].shape[0], g[fmt.TIME_STAMPS].shape[0])
        last = g[fmt.TIME_STAMPS][n - 1]
        np.testing.assert_array_equal(g[fmt.DATA][:n, 0], np.arange(n))
    lost_s = t_kill - last
    assert n > 2 * srate
    assert lost_s <= 1.0, f"lost {lost_s:.3f} s"
    report = recover(folder)
    assert report.previous_status == "recording" and report.status == "recovered"
    by_key = {s.key: s for s in report.streams}
    assert by_key[f"{uid}E"].samples == n
    # markers (10/s): recorded, and at most the last second (+ one period) lost;
    # how many depends on how fast the recorder started on a loaded machine
    markers = by_key[f"{uid}M"]
    assert markers.samples >= 10
    assert t_kill - markers.last_time_stamp <= 1.1
    assert not (folder / "session.h5.crashed").exists()
    with h5py.File(h5, "r") as f:  # a plain open works now
        assert f.attrs["status"] == "recovered"
        np.testing.assert_array_equal(f["streams"][f"{uid}E"][fmt.DATA][:, 0], np.arange(n))
        assert f["streams"][f"{uid}E"][fmt.CLOCK_OFFSETS].shape[0] >= 1
    r = subprocess.run(
        avlab_cmd("recover", str(folder), "--json"), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["previous_status"] == "recovered"


def test_restart_same_source_id_records_gap(tmp_path, uid, outlets, stream_cfg):
    srate = 200.0
    cfg = stream_cfg(f"{uid}R", srate=srate, n=400, source_id=f"{uid}R-fixed")
    first = outlets([cfg], delay=0.2, linger=0.0)

    def restart() -> None:
        first.wait(timeout=20)
        time.sleep(1.5)  # the source is gone: a stall of > 1 s
        outlets([cfg], delay=0.2, linger=10.0)

    import threading

    t = threading.Thread(target=restart)
    stop = threading.Event()

    def on_status(rows):
        if rows[0].samples >= 800:
            stop.set()

    t.start()
    summary = record(
        tmp_path,
        streams=[f"{uid}R"],
        wait_s=5,
        duration=25,
        stop_event=stop,
        status_callback=on_status,
    )
    t.join()
    assert summary.streams[0].samples == 800
    assert summary.streams[0].gaps == 1
    with h5py.File(summary.path / fmt.SESSION_FILE, "r") as f:
        g = f["streams"][f"{uid}R"]
        np.testing.assert_array_equal(g[fmt.DATA][:, 0], np.r_[np.arange(400), np.arange(400)])
        gaps = g[fmt.GAPS][()]
        assert gaps.shape == (1, 4)
        assert gaps[0, 0] == 400  # index of the first sample after the restart
        ts = g[fmt.TIME_STAMPS][()]
        assert gaps[0, 1] == ts[399] and gaps[0, 2] == ts[400]
        assert gaps[0, 2] - gaps[0, 1] > 1.5
    events = [json.loads(x) for x in (summary.path / fmt.LOG_FILE).read_text().splitlines()]
    kinds = [e["event"] for e in events if e["stream"] == f"{uid}R"]
    assert "stall" in kinds and "resume" in kinds and "gap" in kinds
