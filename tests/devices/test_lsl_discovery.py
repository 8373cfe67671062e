"""``avlab devices``: LSL discovery and local device probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pylsl

from avlab.devices import list_devices, list_streams
from avlab.devices.lsl import parse_desc


def test_list_streams_finds_own_outlet():
    name = f"{uuid.uuid4().hex[:8]}_disc"
    info = pylsl.StreamInfo(name, "Gaze", 3, 200.0, pylsl.cf_double64, f"{name}-src")
    outlet = pylsl.StreamOutlet(info)
    found = [s for s in list_streams(wait_s=1.0) if s.name == name]
    assert len(found) == 1
    s = found[0]
    assert (s.type, s.channel_count, s.nominal_srate, s.channel_format, s.source_id) == (
        "Gaze",
        3,
        200.0,
        "double64",
        f"{name}-src",
    )
    assert s.uid and s.hostname
    r = subprocess.run(
        [sys.executable, "-m", "avlab", "devices", "--json", "--wait", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [x["source_id"] for x in report["streams"] if x["name"] == name] == [f"{name}-src"]
    assert set(report) == {"streams", "cameras", "audio"}
    r = subprocess.run(
        [sys.executable, "-m", "avlab", "devices", "--wait", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert r.returncode == 0 and name in r.stdout
    del outlet


def test_local_probes_are_typed():
    report = list_devices(wait_s=0.1)
    assert all(c.path.startswith("/dev/video") for c in report.cameras)
    assert all(a.index >= 0 and a.name for a in report.audio)


def test_parse_desc_time_echo_truth_labels():
    info = pylsl.StreamInfo("x", "Gaze", 2, 200.0, pylsl.cf_float32, "x-src")
    te = info.desc().append_child("time_echo")
    te.append_child_value("host", "127.0.0.1")
    te.append_child_value("port", "12321")
    info.desc().append_child("avlab_sim").append_child_value("truth_file", "/tmp/t.json")
    chans = info.desc().append_child("channels")
    for lab in ("gx", "gy"):
        chans.append_child("channel").append_child_value("label", lab)
    d = parse_desc(info.as_xml())
    assert d == {
        "channel_labels": ["gx", "gy"],
        "time_echo_host": "127.0.0.1",
        "time_echo_port": "12321",
        "truth_file": "/tmp/t.json",
    }
