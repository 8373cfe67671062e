"""Clock offsets by time echo (Neon-like device) and the ground-truth copy."""

from __future__ import annotations

import json
import threading
import time
import uuid

import h5py
import numpy as np
import pylsl

from avlab import _format as fmt
from avlab.devices import timeecho
from avlab.record import record

DEVICE_OFFSET_S = 1000.0  # device clock = LSL clock + 1000 s


def test_time_echo_offsets_and_truth_copy(tmp_path):
    name = f"{uuid.uuid4().hex[:8]}_neon"
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"v": 1}))
    out = tmp_path / "out"
    out.mkdir()
    server = timeecho.TimeEchoServer(
        lambda: int((pylsl.local_clock() + DEVICE_OFFSET_S) * 1e9)
    ).start()
    info = pylsl.StreamInfo(name, "Gaze", 2, 200.0, pylsl.cf_float32, f"{name}-src")
    te = info.desc().append_child("time_echo")
    te.append_child_value("host", "127.0.0.1")
    te.append_child_value("port", str(server.port))
    info.desc().append_child("avlab_sim").append_child_value("truth_file", str(truth))
    outlet = pylsl.StreamOutlet(info)
    stop = threading.Event()

    def push() -> None:
        k = 0
        while not stop.is_set():
            outlet.push_sample([k, 0], pylsl.local_clock() + DEVICE_OFFSET_S)
            k += 1
            time.sleep(0.005)

    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        truth_updates = threading.Timer(1.0, lambda: truth.write_text(json.dumps({"v": 2})))
        truth_updates.start()
        summary = record(out, streams=[name], wait_s=5, duration=3.0)
        truth_updates.join()
    finally:
        stop.set()
        pusher.join()
        server.stop()
    with h5py.File(summary.path / fmt.SESSION_FILE, "r") as f:
        g = f["streams"][name]
        assert g.attrs["clock_method"] == "time_echo"
        off = g[fmt.CLOCK_OFFSETS][()]
        assert off.shape[0] >= 2
        np.testing.assert_allclose(off[:, 1], -DEVICE_OFFSET_S, atol=0.005)
    lag = summary.streams[0].lag_s
    assert abs(lag) < 0.5  # corrected with the time-echo offset
    assert json.loads((summary.path / fmt.TRUTH_FILE).read_text()) == {"v": 2}
