"""NeonAdapter: a narrow stand-in for the Companion app at the library boundary.

The stand-in replaces only what needs a phone: ``simple.Device`` (its status
properties, recording calls and ``send_event``, built from the library's own
``models.Status``/``Phone``/``Sensor``) and the two RTSP receive functions
(async generators yielding the library's own ``GazeData``/``BlinkEventData``).
The Time Echo server is the real one from :mod:`avlab.devices.timeecho` on a
device clock with a known offset; the LSL outlets and inlets are real.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from types import SimpleNamespace
from typing import Any

import numpy as np
import pylsl
import pytest
from pupil_labs.realtime_api.models import Hardware, Phone, Recording, Sensor, Status
from pupil_labs.realtime_api.streaming import BlinkEventData, EyestateGazeData, GazeData

from avlab.devices.lsl import parse_desc
from avlab.devices.neon import (
    NeonAdapter,
    NeonBatteryLowError,
    NeonConnectionLostError,
    NeonError,
    NeonNotFoundError,
    NeonStorageLowError,
)
from avlab.devices.timeecho import TimeEchoServer

DEVICE_OFFSET_S = 1.7e9 + 123.456  # Neon Unix time - LSL time
RATE = 200.0


def _device_now() -> float:
    return pylsl.local_clock() + DEVICE_OFFSET_S


class FakeDevice:
    """Stands in for ``pupil_labs.realtime_api.simple.Device`` (no phone here)."""

    def __init__(self, echo_port: int | None, *, battery: int = 80, free: int = 50_000_000_000,
                 glasses: bool = True, eye_events: bool = True) -> None:  # fmt: skip
        self.address, self.port, self.dns_name = "127.0.0.1", 8080, "neon.local."
        phone = Phone(battery, "OK" if battery >= 20 else "LOW", "phone-id-1", "Lab Neon",
                      "127.0.0.1", free, "OK", echo_port)  # fmt: skip
        hw = Hardware("2", "unknown", "unknown", "123456") if glasses else Hardware()
        sensors = [
            Sensor("gaze", "DIRECT", True, "127.0.0.1", "camera=gaze", 8086),
            Sensor("eye_events", "DIRECT", eye_events, "127.0.0.1", "camera=eye_events", 8086),
            Sensor("world", "DIRECT", True, "127.0.0.1", "camera=world", 8086),
        ]
        self._status = Status(phone, hw, sensors, None)
        self.events: list[tuple[str, int]] = []
        self.closed = False

    phone_name = property(lambda self: self._status.phone.device_name)
    phone_id = property(lambda self: self._status.phone.device_id)
    phone_ip = property(lambda self: self._status.phone.ip)
    battery_level_percent = property(lambda self: self._status.phone.battery_level)
    battery_state = property(lambda self: self._status.phone.battery_state)
    memory_num_free_bytes = property(lambda self: self._status.phone.memory)
    memory_state = property(lambda self: self._status.phone.memory_state)
    version_glasses = property(lambda self: self._status.hardware.version)
    module_serial = property(lambda self: self._status.hardware.module_serial)

    def _sensor(self, name: str) -> Sensor:
        return next(s for s in self._status.sensors if s.sensor == name)

    def gaze_sensor(self) -> Sensor:
        return self._sensor("gaze")

    def world_sensor(self) -> Sensor:
        return self._sensor("world")

    def eye_events_sensor(self) -> Sensor:
        return self._sensor("eye_events")

    def recording_start(self) -> str:
        if self._status.recording is not None and self._status.recording.action == "START":
            raise RuntimeError("Recording already running")
        self._status.recording = Recording("START", "rec-42", "", 0)
        return "rec-42"

    def recording_stop_and_save(self) -> None:
        self._status.recording = Recording("SAVE", "rec-42", "", 10)

    def recording_cancel(self) -> None:
        self._status.recording = Recording("CANCEL", "rec-42", "", 10)

    def send_event(self, event_name: str, event_timestamp_unix_ns: int | None = None) -> None:
        self.events.append((event_name, int(event_timestamp_unix_ns or 0)))

    def close(self) -> None:
        self.closed = True


class FakeStreaming:
    """Stands in for ``pupil_labs.realtime_api.streaming``: gaze at 200 Hz, a blink."""

    def __init__(self, n_gaze: int, *, eyestate: bool = False) -> None:
        self.n_gaze, self.eyestate = n_gaze, eyestate
        self.sent: list[float] = []  # device times of the gaze sent
        self.blink: tuple[int, int] | None = None

    async def receive_gaze_data(self, url: str, run_loop: bool = True) -> Any:
        assert "camera=gaze" in url
        t0 = _device_now()
        for k in range(self.n_gaze):
            t = t0 + k / RATE
            while _device_now() < t:
                await asyncio.sleep(0.002)
            self.sent.append(t)
            if self.eyestate:
                vals = [400.0 + k, 300.0, True, 3.5] + [0.0] * 6 + [3.4] + [0.0] * 6 + [t]
                yield EyestateGazeData(*vals)
            else:
                yield GazeData(400.0 + k, 300.0, True, t)
        await asyncio.sleep(3600)  # a live stream: nothing more, but not closed

    async def receive_eye_events_data(self, url: str, run_loop: bool = True) -> Any:
        await asyncio.sleep(0.2)
        end = int(_device_now() * 1e9)
        self.blink = (end - 150_000_000, end)
        yield BlinkEventData(4, self.blink[0], self.blink[1], end * 1e-9)
        await asyncio.sleep(3600)


@pytest.fixture()
def echo() -> Any:
    with TimeEchoServer(lambda: int(_device_now() * 1e9)) as server:
        yield server


def _inlet(name: str) -> pylsl.StreamInlet:
    infos = [i for i in pylsl.resolve_byprop("name", name, 1, 5.0) if i.name() == name]
    assert infos, name
    inlet = pylsl.StreamInlet(infos[0], max_buflen=30)
    inlet.open_stream(timeout=5.0)
    return inlet


def _run_relay(adapter: NeonAdapter, name: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """Run the relay in a thread, read both streams; returns (result, data)."""
    stop = threading.Event()
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = adapter.relay(stop, stream_name=name, wait_for_consumer_s=10.0, **kw)
        except Exception as exc:  # noqa: BLE001
            out["error"] = exc

    thread = threading.Thread(target=target)
    gaze_in = ev_in = None
    thread.start()
    try:
        gaze_in = _inlet(name)
        ev_in = _inlet(f"{name}-Events") if kw.get("events", True) else None
        out["xml"] = gaze_in.info(timeout=5.0).as_xml()
        streaming = adapter._streaming
        deadline = pylsl.local_clock() + 10.0
        rows, stamps = [], []
        while pylsl.local_clock() < deadline and thread.is_alive():
            chunk, ts = gaze_in.pull_chunk(timeout=0.2)
            rows += chunk
            stamps += ts
            if len(rows) >= streaming.n_gaze:
                break
        out["gaze"], out["stamps"] = np.array(rows), np.array(stamps)
        if ev_in is not None:
            ev, ev_ts = ev_in.pull_chunk(timeout=1.0)
            out["events"], out["event_stamps"] = ev, ev_ts
    finally:
        stop.set()
        thread.join(timeout=10.0)
        for inlet in (gaze_in, ev_in):
            if inlet is not None:
                inlet.close_stream()
    return out.get("result"), out


def test_status_and_checks(echo: TimeEchoServer) -> None:
    st = NeonAdapter(FakeDevice(echo.port)).check()
    assert st.phone_name == "Lab Neon" and st.battery_percent == 80
    assert st.glasses_connected and st.module_serial == "123456"
    assert st.sensors == {"gaze": True, "world": True, "eye_events": True}
    assert not st.recording and st.time_echo_port == echo.port
    with pytest.raises(
        NeonBatteryLowError, match=r"Neon 'Lab Neon' \(127.0.0.1\): battery at 15 %"
    ):
        NeonAdapter(FakeDevice(echo.port, battery=15)).check()
    with pytest.raises(NeonStorageLowError, match="1.0 GB free"):
        NeonAdapter(FakeDevice(echo.port, free=1_000_000_000)).check()
    with pytest.raises(NeonError, match="glasses\\) is not connected"):
        NeonAdapter(FakeDevice(echo.port, glasses=False)).check()


def test_recording_start_stop(echo: TimeEchoServer) -> None:
    neon = NeonAdapter(FakeDevice(echo.port))
    assert neon.start_recording() == "rec-42"
    st = neon.status()
    assert st.recording and st.recording_id == "rec-42"
    with pytest.raises(NeonError, match="refused to start recording: Recording already running"):
        neon.start_recording()
    neon.stop_recording(save=True)
    assert not neon.status().recording


def test_discover_and_connect(echo: TimeEchoServer) -> None:
    devices = [FakeDevice(echo.port), FakeDevice(echo.port)]
    found = NeonAdapter.discover(0.1, discover_fn=lambda s: devices)
    assert [f.name for f in found] == ["Lab Neon", "Lab Neon"] and found[0].port == 8080
    assert all(d.closed for d in devices)
    with pytest.raises(NeonNotFoundError, match="no Neon found on the network within 0.1 s"):
        NeonAdapter.discover_one(0.1, discover_fn=lambda s: [])

    def refuse(address: str, port: int) -> Any:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(NeonNotFoundError, match="no Neon Companion app answers at 10.0.0.9:8080"):
        NeonAdapter.connect("10.0.0.9", device_factory=refuse)
    neon = NeonAdapter.connect("127.0.0.1", device_factory=lambda a, p: FakeDevice(echo.port))
    assert neon.status().phone_ip == "127.0.0.1"


def test_offset_and_events_convert_lsl_to_neon_time(echo: TimeEchoServer) -> None:
    dev = FakeDevice(echo.port)
    neon = NeonAdapter(dev)
    off = neon.estimate_offset()
    assert off.offset_s == pytest.approx(-DEVICE_OFFSET_S, abs=1.5e-3)
    t_flip = pylsl.local_clock() - 0.25
    ns = neon.send_event('{"event":"cue","trial":1}', t_flip)
    assert dev.events == [('{"event":"cue","trial":1}', ns)]
    assert ns * 1e-9 == pytest.approx(t_flip + DEVICE_OFFSET_S, abs=1.5e-3)
    with pytest.raises(NeonError, match="offers no Time Echo server"):
        NeonAdapter(FakeDevice(None)).estimate_offset()


def test_relay_lsl_stamping(echo: TimeEchoServer) -> None:
    n = 300  # 1.5 s at 200 Hz
    streaming = FakeStreaming(n, eyestate=True)
    neon = NeonAdapter(FakeDevice(echo.port), streaming=streaming)
    name = f"test-neon-{uuid.uuid4().hex[:8]}"
    result, out = _run_relay(neon, name, stamping="lsl", lost_after_s=30.0)
    assert "error" not in out, out.get("error")
    assert result.n_gaze == n and len(out["gaze"]) == n
    # stamps: the Neon time mapped through the measured offset
    truth = np.array(streaming.sent) - DEVICE_OFFSET_S
    assert np.abs(out["stamps"] - truth).max() < 1.5e-3
    assert np.diff(out["stamps"]) == pytest.approx(1 / RATE, abs=1e-3)
    g = out["gaze"]
    assert g[:, 0] == pytest.approx(400.0 + np.arange(n))
    assert g[:, 2] == pytest.approx(3.5) and g[:, 3] == pytest.approx(3.4)
    desc = parse_desc(out["xml"])
    assert desc["channel_labels"] == ["x", "y", "pupil_left", "pupil_right", "blink"]
    assert "time_echo_host" not in desc  # stamps are LSL times already
    # the blink event: JSON, stamped at its start on the LSL clock
    assert result.n_events == 1 and len(out["events"]) == 1
    ev = json.loads(out["events"][0][0])
    assert ev["event"] == "blink"
    assert streaming.blink is not None
    start = streaming.blink[0] * 1e-9 - DEVICE_OFFSET_S
    assert ev["start"] == pytest.approx(start, abs=1.5e-3)
    assert out["event_stamps"][0] == pytest.approx(ev["start"], abs=1e-6)
    assert ev["end"] - ev["start"] == pytest.approx(0.15, abs=1e-6)


def test_relay_device_stamping_announces_time_echo(echo: TimeEchoServer) -> None:
    n = 100
    streaming = FakeStreaming(n)
    neon = NeonAdapter(FakeDevice(echo.port, eye_events=False), streaming=streaming)
    name = f"test-neon-{uuid.uuid4().hex[:8]}"
    result, out = _run_relay(neon, name, lost_after_s=30.0, events=False)
    assert "error" not in out, out.get("error")
    assert result.n_gaze == n and result.n_events == 0 and result.stamping == "device"
    assert out["stamps"] == pytest.approx(np.array(streaming.sent), abs=1e-6)
    assert np.isnan(out["gaze"][:, 2]).all() and (out["gaze"][:, 4] == 0).all()
    desc = parse_desc(out["xml"])
    assert desc["time_echo_host"] == "127.0.0.1" and desc["time_echo_port"] == str(echo.port)


def test_relay_lost_connection(echo: TimeEchoServer) -> None:
    streaming = FakeStreaming(20)  # then silence: the phone left the network
    neon = NeonAdapter(FakeDevice(echo.port), streaming=streaming)
    stop = threading.Event()
    timer = threading.Timer(10.0, stop.set)
    timer.start()
    try:
        with pytest.raises(
            NeonConnectionLostError,
            match=r"Neon 'Lab Neon' \(127.0.0.1\): no gaze for 0.3 s after 20 samples",
        ):
            neon.relay(stop, stream_name=f"test-neon-{uuid.uuid4().hex[:8]}", lost_after_s=0.3)
    finally:
        timer.cancel()
    assert not stop.is_set()


def test_relay_needs_gaze_sensor(echo: TimeEchoServer) -> None:
    dev = FakeDevice(echo.port)
    dev._status.sensors[0] = Sensor("gaze", "DIRECT", False)
    with pytest.raises(NeonError, match="gaze sensor is not streaming"):
        NeonAdapter(dev, streaming=SimpleNamespace()).relay(threading.Event())
