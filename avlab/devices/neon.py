"""Pupil Labs Neon through ``pupil-labs-realtime-api``.

:class:`NeonAdapter` wraps a connected ``pupil_labs.realtime_api.simple.Device``
(the Companion app on the Neon phone): status (battery, storage, glasses),
the phone's own recording, session events, the clock offset by the Time Echo
protocol, and a relay of gaze and eye events into LSL for when the Companion
app's own LSL output is off.

Clocks
------
The Neon stamps everything on the phone's clock, Unix epoch (gaze and event
times in ``timestamp_unix_seconds`` / ``*_ns``). :meth:`NeonAdapter.estimate_offset`
runs a Time Echo burst (:func:`avlab.devices.timeecho.measure_offset`, checked
against the library's own estimator in ``tests/devices/test_timeecho.py``)
and returns ``offset_s`` with

    t_lsl = t_neon + offset_s        (t_neon in Unix seconds on the phone)

- :meth:`~NeonAdapter.send_event` converts the other way:
  ``t_neon_ns = round((t_lsl - offset_s) * 1e9)``, so an event sent for a flip
  at LSL time ``t_lsl`` lands at that moment in the Neon's own recording.
- :meth:`~NeonAdapter.relay` pushes each gaze sample with either
  ``stamping="device"`` (default): stamp = ``t_neon``, and the stream's
  ``desc/time_echo`` names the phone's Time Echo endpoint, exactly as the
  simulator's Gaze stream does, so the recorder measures the offset all along
  the session (``clock_method = "time_echo"``) and the sync fits offset and
  drift; or ``stamping="lsl"``: stamp = ``t_neon + offset_s`` with the offset
  re-measured every ``echo_interval_s`` (no ``time_echo`` in desc: the stamps
  are already LSL times, and adding the recorder's echo offset would apply it
  twice). Error of either: the Time Echo error (≈ 1 ms, its 1 ms resolution
  dithered), plus, for ``"lsl"``, the drift between re-measurements
  (phone clocks drift ~10-50 ppm: < 0.5 ms over 10 s).

The gaze stream has the simulator's layout (:data:`avlab.sim.gaze.GAZE_CHANNELS`):
``x, y`` (scene-camera pixels, 1600 x 1200), ``pupil_left, pupil_right`` (mm,
NaN unless the Companion app streams eye state), ``blink`` (1 inside a blink
the relay already knows of; Neon reports a blink when it has ended, so gaze
samples during a blink are usually pushed before it is known: use the
``-Events`` stream for blinks). Eye events (blinks, fixations, saccades) go to
a second stream ``<stream_name>-Events`` (type ``EyeEvents``, JSON strings),
stamped at the event's start.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.errors import AvlabError

if TYPE_CHECKING:
    import pylsl

__all__ = [
    "NeonAdapter",
    "NeonBatteryLowError",
    "NeonClockOffset",
    "NeonConnectionLostError",
    "NeonError",
    "NeonInfo",
    "NeonNotFoundError",
    "NeonStatus",
    "NeonStorageLowError",
    "RelayResult",
]

#: Neon scene camera, pixels (width, height).
SCENE_CAMERA_PX = (1600, 1200)
GAZE_RATE_HZ = 200.0
_EVENT_NAMES = {0: "saccade", 1: "fixation", 2: "saccade_onset", 3: "fixation_onset", 4: "blink"}


class NeonError(AvlabError, RuntimeError):
    """A Neon (Companion app) problem."""

    exit_code = 11


class NeonNotFoundError(NeonError, LookupError):
    """No Neon found, or none at the given address."""


class NeonBatteryLowError(NeonError):
    """The Neon phone's battery is too low for a session."""


class NeonStorageLowError(NeonError):
    """The Neon phone has too little free storage for a session."""


class NeonConnectionLostError(NeonError, ConnectionError):
    """The Neon stopped sending data during a relay."""


class NeonInfo(BaseModel):
    """A Neon found on the network."""

    model_config = ConfigDict(extra="forbid")

    name: str
    address: str
    port: int
    dns_name: str | None = None


class NeonStatus(BaseModel):
    """What the Companion app reports.

    Attributes
    ----------
    phone_name, phone_id, phone_ip : str
        The phone.
    battery_percent : int
        Phone battery, %.
    battery_state : str
        ``OK``, ``LOW`` or ``CRITICAL`` (the app's judgement).
    free_storage_bytes : int
        Free phone storage, bytes.
    storage_state : str
        ``OK``, ``LOW`` or ``CRITICAL``.
    glasses_connected : bool
        Neon module plugged in.
    module_serial : str or None
        Neon module serial.
    sensors : dict of str to bool
        Whether each sensor stream (``gaze``, ``world``, ``eye_events``) is connected.
    recording : bool
        Whether the phone is recording.
    recording_id : str or None
        Id of the running recording.
    time_echo_port : int or None
        TCP port of the phone's Time Echo server.
    """

    model_config = ConfigDict(extra="forbid")

    phone_name: str
    phone_id: str
    phone_ip: str
    battery_percent: int
    battery_state: str
    free_storage_bytes: int
    storage_state: str
    glasses_connected: bool
    module_serial: str | None = None
    sensors: dict[str, bool]
    recording: bool
    recording_id: str | None = None
    time_echo_port: int | None = None


class NeonClockOffset(BaseModel):
    """``t_lsl = t_neon + offset_s`` (Neon time in Unix seconds), measured at ``local_time_s``."""

    model_config = ConfigDict(extra="forbid")

    offset_s: float
    local_time_s: float
    rtt_s: float
    n_used: int


class RelayResult(BaseModel):
    """What :meth:`NeonAdapter.relay` pushed."""

    model_config = ConfigDict(extra="forbid")

    n_gaze: int
    n_events: int
    stamping: str
    offset_s: float | None = None
    offsets_measured: int = 0


def _phone(device: Any) -> Any:
    return getattr(getattr(device, "_status", None), "phone", None)


class NeonAdapter:
    """One connected Neon.

    Parameters
    ----------
    device : pupil_labs.realtime_api.simple.Device
        A connected device (from :meth:`connect` or :meth:`discover_one`).
    streaming : module, optional
        Provides ``receive_gaze_data`` and ``receive_eye_events_data`` (async
        generators over RTSP); default ``pupil_labs.realtime_api.streaming``.
        The relay uses these (lossless) rather than the simple API's
        ``receive_gaze_datum``, which keeps only the latest sample.
    min_battery_percent : int
        :meth:`check` fails below this.
    min_free_bytes : int
        :meth:`check` fails below this (default 4 GB, ≈ 1 h of Neon recording).
    """

    def __init__(
        self,
        device: Any,
        *,
        streaming: Any = None,
        min_battery_percent: int = 20,
        min_free_bytes: int = 4_000_000_000,
    ) -> None:
        self.device = device
        self._streaming = streaming
        self.min_battery_percent = min_battery_percent
        self.min_free_bytes = min_free_bytes
        self.offset: NeonClockOffset | None = None

    # -- finding and connecting ------------------------------------------------------
    @staticmethod
    def discover(
        timeout_s: float = 5.0, *, discover_fn: Callable[[float], list[Any]] | None = None
    ) -> list[NeonInfo]:
        """Neons announcing themselves on the local network.

        Parameters
        ----------
        timeout_s : float
            Search time, s.
        discover_fn : callable, optional
            ``discover_fn(seconds) -> list of simple.Device`` (default
            ``pupil_labs.realtime_api.simple.discover_devices``).

        Returns
        -------
        found : list of NeonInfo
        """
        if discover_fn is None:
            from pupil_labs.realtime_api.simple import discover_devices

            discover_fn = discover_devices
        devices = discover_fn(timeout_s)
        out = []
        for dev in devices:
            out.append(
                NeonInfo(
                    name=str(dev.phone_name),
                    address=str(dev.address),
                    port=int(dev.port),
                    dns_name=getattr(dev, "dns_name", None),
                )
            )
            dev.close()
        logger.info("found %d Neon device(s)", len(out))
        return out

    @classmethod
    def connect(
        cls,
        address: str,
        port: int = 8080,
        *,
        device_factory: Callable[[str, int], Any] | None = None,
        **kwargs: Any,
    ) -> NeonAdapter:
        """Connect to the Companion app at ``address:port``.

        Parameters
        ----------
        address : str
            Phone IP address (shown in the Companion app).
        port : int
            Its HTTP port (8080).
        device_factory : callable, optional
            ``device_factory(address, port)`` (default ``simple.Device``).
        **kwargs
            Passed to :class:`NeonAdapter`.

        Returns
        -------
        adapter : NeonAdapter

        Raises
        ------
        NeonNotFoundError
            Nothing answers at that address.
        """
        if device_factory is None:
            from pupil_labs.realtime_api.simple import Device

            device_factory = Device
        try:
            device = device_factory(address, port)
        except Exception as exc:  # noqa: BLE001 - aiohttp / DeviceError / OSError alike
            raise NeonNotFoundError(
                f"no Neon Companion app answers at {address}:{port} ({exc}).",
                "Check that the phone is on the same network, the Companion app is open, "
                "and the address matches the one in the app (or use discovery).",
            ) from exc
        return cls(device, **kwargs)

    @classmethod
    def discover_one(
        cls,
        timeout_s: float = 10.0,
        *,
        discover_fn: Callable[[float], list[Any]] | None = None,
        **kwargs: Any,
    ) -> NeonAdapter:
        """Connect to the first Neon found.

        Raises
        ------
        NeonNotFoundError
            None found within ``timeout_s``.
        """
        if discover_fn is None:
            from pupil_labs.realtime_api.simple import discover_devices

            discover_fn = discover_devices
        devices = discover_fn(timeout_s)
        if not devices:
            raise NeonNotFoundError(
                f"no Neon found on the network within {timeout_s:g} s.",
                "Open the Companion app, put the phone and this computer on the same "
                "network (no client isolation), or connect by address.",
            )
        for extra in devices[1:]:
            extra.close()
        return cls(devices[0], **kwargs)

    @property
    def name(self) -> str:
        """The phone's name and address, for messages."""
        return f"Neon {self.device.phone_name!r} ({self.device.phone_ip})"

    # -- status ----------------------------------------------------------------------------
    def status(self) -> NeonStatus:
        """Battery, storage, glasses, sensors and recording state.

        Returns
        -------
        status : NeonStatus
        """
        d = self.device
        sensors = {}
        for key, get in (
            ("gaze", d.gaze_sensor),
            ("world", d.world_sensor),
            ("eye_events", d.eye_events_sensor),
        ):
            s = get()
            sensors[key] = bool(s is not None and s.connected)
        rec = getattr(getattr(d, "_status", None), "recording", None)
        recording = rec is not None and str(rec.action).upper() == "START"
        phone = _phone(d)
        module = d.module_serial
        return NeonStatus(
            phone_name=str(d.phone_name),
            phone_id=str(d.phone_id),
            phone_ip=str(d.phone_ip),
            battery_percent=int(d.battery_level_percent),
            battery_state=str(d.battery_state),
            free_storage_bytes=int(d.memory_num_free_bytes),
            storage_state=str(d.memory_state),
            glasses_connected=d.version_glasses not in (None, "unknown")
            and module not in (None, "default"),
            module_serial=None if module in (None, "default", "unknown") else str(module),
            sensors=sensors,
            recording=recording,
            recording_id=str(rec.id) if recording else None,
            time_echo_port=getattr(phone, "time_echo_port", None),
        )

    def check(self) -> NeonStatus:
        """Status, failing when the Neon is not ready for a session.

        Returns
        -------
        status : NeonStatus

        Raises
        ------
        NeonBatteryLowError
            Battery below ``min_battery_percent``.
        NeonStorageLowError
            Free storage below ``min_free_bytes`` (or the app says LOW).
        NeonError
            The Neon module (glasses) is not connected.
        """
        st = self.status()
        if st.battery_percent < self.min_battery_percent:
            raise NeonBatteryLowError(
                f"{self.name}: battery at {st.battery_percent} % "
                f"(below {self.min_battery_percent} %).",
                "Charge the phone (or use a USB-C hub with power) before the session.",
            )
        if st.free_storage_bytes < self.min_free_bytes or st.storage_state != "OK":
            raise NeonStorageLowError(
                f"{self.name}: {st.free_storage_bytes / 1e9:.1f} GB free "
                f"(needs {self.min_free_bytes / 1e9:.1f} GB; app says {st.storage_state}).",
                "Upload and delete old recordings in the Companion app.",
            )
        if not st.glasses_connected:
            raise NeonError(
                f"{self.name}: the Neon module (glasses) is not connected.",
                "Plug the glasses' USB-C cable into the phone and wait for the app to show them.",
            )
        return st

    # -- recording and events ------------------------------------------------------------
    def start_recording(self) -> str:
        """Start the phone's own recording.

        Returns
        -------
        recording_id : str

        Raises
        ------
        NeonError
            The app refused (already recording, template fields missing, ...).
        """
        try:
            rec_id = str(self.device.recording_start())
        except Exception as exc:  # noqa: BLE001 - DeviceError carries the app's reason
            raise NeonError(
                f"{self.name} refused to start recording: {exc}.",
                "Check the Companion app (wearer and workspace selected, template filled, "
                "no recording running).",
            ) from exc
        logger.info("%s: recording %s started", self.name, rec_id)
        return rec_id

    def stop_recording(self, save: bool = True) -> None:
        """Stop the phone's recording, saving it (or discarding it with ``save=False``)."""
        try:
            if save:
                self.device.recording_stop_and_save()
            else:
                self.device.recording_cancel()
        except Exception as exc:  # noqa: BLE001
            raise NeonError(
                f"{self.name} could not {'save' if save else 'cancel'} its recording: {exc}.",
                "Check the Companion app; the recording may need template fields filled.",
            ) from exc
        logger.info("%s: recording %s", self.name, "saved" if save else "cancelled")

    def estimate_offset(self, n_echoes: int = 20) -> NeonClockOffset:
        """Measure ``t_lsl = t_neon + offset_s`` with a Time Echo burst.

        Parameters
        ----------
        n_echoes : int
            Echoes in the burst.

        Returns
        -------
        offset : NeonClockOffset
            Also kept as :attr:`offset` for :meth:`send_event`.

        Raises
        ------
        NeonError
            The app has no Time Echo server (Companion app too old) or it is unreachable.
        """
        from avlab.devices.timeecho import TimeEchoError, measure_offset

        port = getattr(_phone(self.device), "time_echo_port", None)
        if port is None:
            raise NeonError(
                f"{self.name} offers no Time Echo server.", "Update the Neon Companion app."
            )
        try:
            res = measure_offset(str(self.device.phone_ip), int(port), n_echoes=n_echoes)
        except TimeEchoError as exc:
            raise NeonConnectionLostError(
                f"{self.name}: time echo failed: {exc.message}",
                "Check the network between this computer and the phone.",
            ) from exc
        self.offset = NeonClockOffset(
            offset_s=res.offset_s, local_time_s=res.local_time_s, rtt_s=res.rtt_s, n_used=res.n_used
        )
        logger.debug("%s: offset %.6f s (rtt %.2f ms)", self.name, res.offset_s, res.rtt_s * 1e3)
        return self.offset

    def send_event(self, name: str, lsl_time: float | None = None) -> int:
        """Send a named event to the Neon's recording, at an LSL time.

        Parameters
        ----------
        name : str
            Event name (e.g. a marker's JSON).
        lsl_time : float, optional
            When it happened, LSL seconds (default: now).

        Returns
        -------
        neon_time_ns : int
            The Neon (Unix) time sent, ns: ``round((lsl_time - offset_s) * 1e9)``.
        """
        import pylsl

        if self.offset is None:
            self.estimate_offset()
        assert self.offset is not None
        t = pylsl.local_clock() if lsl_time is None else float(lsl_time)
        neon_ns = int(round((t - self.offset.offset_s) * 1e9))
        try:
            self.device.send_event(name, event_timestamp_unix_ns=neon_ns)
        except Exception as exc:  # noqa: BLE001
            raise NeonConnectionLostError(
                f"{self.name}: sending event {name!r} failed: {exc}.",
                "Check the network between this computer and the phone.",
            ) from exc
        return neon_ns

    def close(self) -> None:
        """Close the connection (stops the library's background thread)."""
        self.device.close()

    # -- relay ----------------------------------------------------------------------------------
    def _outlets(
        self, stream_name: str, stamping: str, source_id: str
    ) -> tuple[pylsl.StreamOutlet, pylsl.StreamOutlet]:
        import pylsl

        from avlab.sim.gaze import GAZE_CHANNELS

        info = pylsl.StreamInfo(
            stream_name, "Gaze", len(GAZE_CHANNELS), GAZE_RATE_HZ, "float32", source_id
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "Pupil Labs")
        chans = desc.append_child("channels")
        for label, unit, ctype in GAZE_CHANNELS:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", ctype)
        acq = desc.append_child("acquisition")
        acq.append_child_value("camera_width", str(SCENE_CAMERA_PX[0]))
        acq.append_child_value("camera_height", str(SCENE_CAMERA_PX[1]))
        acq.append_child_value("stamping", stamping)
        neon = desc.append_child("neon")
        neon.append_child_value("phone_name", str(self.device.phone_name))
        neon.append_child_value("phone_id", str(self.device.phone_id))
        port = getattr(_phone(self.device), "time_echo_port", None)
        if stamping == "device" and port is not None:
            echo = desc.append_child("time_echo")
            echo.append_child_value("host", str(self.device.phone_ip))
            echo.append_child_value("port", str(port))
        ev = pylsl.StreamInfo(
            f"{stream_name}-Events", "EyeEvents", 1, 0.0, "string", f"{source_id}-events"
        )
        ev_desc = ev.desc()
        ev_desc.append_child_value("manufacturer", "Pupil Labs")
        ch = ev_desc.append_child("channels").append_child("channel")
        ch.append_child_value("label", "event")
        ch.append_child_value("unit", "json")
        ch.append_child_value("type", "EyeEvent")
        ev_desc.append_child("acquisition").append_child_value("stamping", stamping)
        return (
            pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360),
            pylsl.StreamOutlet(ev, chunk_size=1, max_buffered=360),
        )

    def relay(
        self,
        stop_event: threading.Event,
        *,
        stream_name: str = "Neon-Gaze",
        stamping: Literal["device", "lsl"] = "device",
        echo_interval_s: float = 10.0,
        lost_after_s: float = 3.0,
        source_id: str | None = None,
        events: bool = True,
        wait_for_consumer_s: float = 0.0,
    ) -> RelayResult:
        """Push the Neon's gaze (and eye events) into LSL until ``stop_event`` is set.

        Blocks; run it in a thread. See the module docstring for the stamps.

        Parameters
        ----------
        stop_event : threading.Event
            Set it to stop.
        stream_name : str
            Gaze stream name; eye events go to ``<stream_name>-Events``.
        stamping : {"device", "lsl"}
            Stamp on the Neon clock (with ``desc/time_echo``) or on LSL's.
        echo_interval_s : float
            ``stamping="lsl"``: seconds between offset re-measurements.
        lost_after_s : float
            No gaze this long (after the first) is a lost connection.
        source_id : str, optional
            Default ``avlab-neon-<phone_id>``.
        events : bool
            Relay eye events too (when the app offers them).
        wait_for_consumer_s : float
            Wait up to this long (s) for inlets (the recorder) on the streams
            before relaying (LSL does not replay samples pushed before an inlet
            connects).

        Returns
        -------
        result : RelayResult

        Raises
        ------
        NeonError
            The gaze sensor is not connected.
        NeonConnectionLostError
            No gaze for ``lost_after_s``.
        """
        if stamping not in ("device", "lsl"):
            raise ValueError(f"stamping={stamping!r} must be 'device' or 'lsl'")
        gaze_sensor = self.device.gaze_sensor()
        if gaze_sensor is None or not gaze_sensor.connected or gaze_sensor.url is None:
            raise NeonError(
                f"{self.name}: the gaze sensor is not streaming.",
                "Connect the Neon module and check the Companion app shows gaze.",
            )
        ev_sensor = self.device.eye_events_sensor() if events else None
        ev_url = ev_sensor.url if ev_sensor is not None and ev_sensor.connected else None
        if stamping == "lsl" and self.offset is None:
            self.estimate_offset()
        sid = source_id or f"avlab-neon-{self.device.phone_id}"
        gaze_out, ev_out = self._outlets(stream_name, stamping, sid)
        if wait_for_consumer_s > 0:
            deadline = time.monotonic() + wait_for_consumer_s
            for outlet in (gaze_out, ev_out) if ev_url is not None else (gaze_out,):
                if not outlet.wait_for_consumers(max(0.0, deadline - time.monotonic())):
                    logger.warning("%s: no consumer of %s yet; relaying anyway", self.name,
                                   stream_name)  # fmt: skip
        state = _RelayState(self, stamping, gaze_out, ev_out)
        try:
            asyncio.run(
                state.run(gaze_sensor.url, ev_url, stop_event, echo_interval_s, lost_after_s)
            )
        finally:
            logger.info(
                "%s: relayed %d gaze samples, %d eye events", self.name, state.n_gaze,
                state.n_events,
            )  # fmt: skip
        if state.lost is not None:
            raise NeonConnectionLostError(
                state.lost, "Check the phone's Wi-Fi and that the Companion app is in front."
            )
        return RelayResult(
            n_gaze=state.n_gaze,
            n_events=state.n_events,
            stamping=stamping,
            offset_s=self.offset.offset_s if self.offset is not None else None,
            offsets_measured=state.n_offsets,
        )


class _RelayState:
    """The relay's running state (one asyncio loop, two consumers and a watcher)."""

    def __init__(self, adapter: NeonAdapter, stamping: str, gaze_out: Any, ev_out: Any) -> None:
        self.adapter, self.stamping = adapter, stamping
        self.gaze_out, self.ev_out = gaze_out, ev_out
        self.n_gaze = self.n_events = self.n_offsets = 0
        self.blinks: deque[tuple[float, float]] = deque(maxlen=64)  # device s
        self.last_item = time.monotonic()
        self.first_seen = False
        self.lost: str | None = None

    def _stamp(self, t_device: float) -> float:
        if self.stamping == "device":
            return t_device
        assert self.adapter.offset is not None
        return t_device + self.adapter.offset.offset_s

    def on_gaze(self, g: Any) -> None:
        t = float(g.timestamp_unix_seconds)
        blink = any(a <= t <= b for a, b in self.blinks)
        row = [
            float(g.x),
            float(g.y),
            float(getattr(g, "pupil_diameter_left", math.nan)),
            float(getattr(g, "pupil_diameter_right", math.nan)),
            1.0 if blink else 0.0,
        ]
        self.gaze_out.push_sample(row, self._stamp(t))
        self.n_gaze += 1
        self.last_item, self.first_seen = time.monotonic(), True

    def on_event(self, e: Any) -> None:
        kind = _EVENT_NAMES.get(int(e.event_type), f"type{int(e.event_type)}")
        start = float(e.start_time_ns) * 1e-9
        payload: dict[str, Any] = {"event": kind, "start": self._stamp(start)}
        end_ns = getattr(e, "end_time_ns", None)
        if end_ns is not None:
            end = float(end_ns) * 1e-9
            payload["end"] = self._stamp(end)
            if kind == "blink":
                self.blinks.append((start, end))
        for key in ("mean_gaze_x", "mean_gaze_y", "amplitude_angle_deg"):
            if hasattr(e, key):
                payload[key] = float(getattr(e, key))
        self.ev_out.push_sample([json.dumps(payload, separators=(",", ":"))], payload["start"])
        self.n_events += 1

    async def _consume(self, gen: Any, handler: Callable[[Any], None]) -> None:
        async for item in gen:
            handler(item)

    async def run(
        self,
        gaze_url: str,
        ev_url: str | None,
        stop: threading.Event,
        echo_interval_s: float,
        lost_after_s: float,
    ) -> None:
        streaming = self.adapter._streaming
        if streaming is None:
            from pupil_labs.realtime_api import streaming
        tasks = [
            asyncio.create_task(
                self._consume(streaming.receive_gaze_data(gaze_url, run_loop=True), self.on_gaze)
            )
        ]
        if ev_url is not None:
            tasks.append(
                asyncio.create_task(
                    self._consume(
                        streaming.receive_eye_events_data(ev_url, run_loop=True), self.on_event
                    )
                )
            )
        next_echo = time.monotonic() + echo_interval_s
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
                if tasks[0].done():  # the gaze stream ended or failed
                    exc = tasks[0].exception()
                    self.lost = f"{self.adapter.name}: the gaze stream ended ({exc or 'closed'})."
                    return
                if self.first_seen and time.monotonic() - self.last_item > lost_after_s:
                    self.lost = (
                        f"{self.adapter.name}: no gaze for {lost_after_s:g} s "
                        f"after {self.n_gaze} samples."
                    )
                    return
                if self.stamping == "lsl" and time.monotonic() > next_echo:
                    await asyncio.to_thread(self.adapter.estimate_offset)
                    self.n_offsets += 1
                    next_echo = time.monotonic() + echo_interval_s
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
