"""Pre-flight check: everything a protocol needs, checked before anyone is wired up.

Each check is a row of a pass/fail table (:class:`CheckRow`): the item, what
the protocol expects, what was found, and the fix when it fails. ``avlab
check`` prints it; ``avlab run`` refuses to start on a failure.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.devices.lsl import StreamDescription, list_audio_devices, list_streams

__all__ = [
    "CheckReport",
    "CheckRow",
    "check_audio_output",
    "check_disk",
    "check_display",
    "check_neon",
    "check_streams",
    "estimate_bytes",
    "preflight_check",
]

_BYTES = {"float32": 4, "double64": 8, "int32": 4, "int16": 2, "int8": 1, "int64": 8}
_PRESENTER_TYPES = {"Markers"}


class CheckRow(BaseModel):
    """One line of the pre-flight table."""

    model_config = ConfigDict(extra="forbid")

    item: str
    expected: str
    found: str
    status: Literal["pass", "fail", "warn", "skip"]
    fix: str = ""


class CheckReport(BaseModel):
    """The whole pre-flight table."""

    model_config = ConfigDict(extra="forbid")

    protocol: str
    rows: list[CheckRow]

    @property
    def ok(self) -> bool:
        """True when no row failed."""
        return all(r.status != "fail" for r in self.rows)

    @property
    def failures(self) -> list[CheckRow]:
        """The failed rows."""
        return [r for r in self.rows if r.status == "fail"]


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return v
    return default


def _describe(req: Any) -> str:
    parts = [str(_get(req, "name", default="") or _get(req, "type", default="?"))]
    lo, hi = _get(req, "min_srate_hz", "min_rate_hz"), _get(req, "max_srate_hz", "max_rate_hz")
    if lo is not None or hi is not None:
        parts.append(f"{lo or 0:g}-{hi:g} Hz" if hi is not None else f">= {lo:g} Hz")
    ch = _get(req, "channels", "channel_count", "min_channels")
    if ch is not None:
        parts.append(f">= {ch} ch")
    return ", ".join(parts)


def check_streams(
    requirements: Sequence[Any],
    *,
    streams: list[StreamDescription] | None = None,
    wait_s: float = 2.0,
    presenter_markers: bool = True,
    prefix: str = "",
) -> list[CheckRow]:
    """Check that every required LSL stream is visible with the right rate and channels.

    Parameters
    ----------
    requirements : sequence
        The protocol's stream requirements (``type``, optional ``name``,
        ``min_srate_hz``/``max_srate_hz`` in Hz, ``channels``, ``optional``).
    streams : list of StreamDescription or None
        What is visible; None resolves for ``wait_s`` seconds.
    wait_s : float
        Discovery time, s.
    presenter_markers : bool
        Marker streams are provided by avlab's own presenter once the run starts.
    prefix : str
        Only streams whose name starts with it count (the simulated lab's prefix).

    Returns
    -------
    rows : list of CheckRow
    """
    visible = list_streams(wait_s) if streams is None else streams
    visible = [s for s in visible if s.name.startswith(prefix)]
    rows = []
    for req in requirements:
        stype = str(_get(req, "type", default=""))
        name = _get(req, "name")
        optional = bool(_get(req, "optional", default=False))
        label = f"stream {name or stype}"
        if presenter_markers and stype in _PRESENTER_TYPES and not name:
            rows.append(
                CheckRow(
                    item=label,
                    expected=_describe(req),
                    found="avlab presenter (opens at run start)",
                    status="pass",
                )
            )
            continue
        cands = [s for s in visible if (s.name == name if name else s.type == stype)]
        if not cands and name:
            cands = [s for s in visible if s.name == prefix + str(name)]
        if not cands:
            rows.append(
                CheckRow(
                    item=label,
                    expected=_describe(req),
                    found="not visible",
                    status="warn" if optional else "fail",
                    fix=f"Start the {stype} source and check it is on this network "
                    f"(`avlab devices` lists what is visible).",
                )
            )
            continue
        s = cands[0]
        problems = []
        lo, hi = _get(req, "min_srate_hz", "min_rate_hz"), _get(req, "max_srate_hz", "max_rate_hz")
        if lo is not None and s.nominal_srate < lo:
            problems.append(f"rate {s.nominal_srate:g} Hz < {lo:g} Hz")
        if hi is not None and s.nominal_srate > hi:
            problems.append(f"rate {s.nominal_srate:g} Hz > {hi:g} Hz")
        ch = _get(req, "channels", "channel_count", "min_channels")
        if ch is not None and s.channel_count < ch:
            problems.append(f"{s.channel_count} channels < {ch}")
        found = f"{s.name}: {s.nominal_srate:g} Hz, {s.channel_count} ch on {s.hostname}"
        rows.append(
            CheckRow(
                item=label,
                expected=_describe(req),
                found=found,
                status="fail" if problems else "pass",
                fix=("; ".join(problems) + ": set the device to the protocol's rate/montage.")
                if problems
                else "",
            )
        )
    return rows


def estimate_bytes(streams: Sequence[StreamDescription], duration_s: float) -> int:
    """Bytes a recording of ``streams`` for ``duration_s`` seconds needs (data + stamps).

    Parameters
    ----------
    streams : sequence of StreamDescription
    duration_s : float
        Planned duration, s.

    Returns
    -------
    n_bytes : int
        Including 8 bytes per sample for time stamps and a 25 % margin.
    """
    total = 0.0
    for s in streams:
        rate = s.nominal_srate or 10.0
        per = _BYTES.get(s.channel_format, 64) * s.channel_count + 8
        total += rate * per * duration_s
    return int(total * 1.25) + 50_000_000


def check_disk(folder: Path, need_bytes: int) -> CheckRow:
    """Check free space in ``folder`` against ``need_bytes``."""
    folder = Path(folder)
    probe = folder if folder.exists() else folder.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return CheckRow(
            item=f"disk {folder}",
            expected=f"{need_bytes / 1e9:.2f} GB free",
            found=str(exc),
            status="fail",
            fix="Choose an existing output folder.",
        )
    ok = free >= need_bytes
    return CheckRow(
        item=f"disk {probe}",
        expected=f">= {need_bytes / 1e9:.2f} GB free",
        found=f"{free / 1e9:.1f} GB free",
        status="pass" if ok else "fail",
        fix="" if ok else "Free disk space or record to another drive (OUT_DIR).",
    )


def check_audio_output(device: str | None = None) -> CheckRow:
    """Check that an audio output device with two channels exists."""
    devs = [d for d in list_audio_devices() if d.max_output_channels >= 2]
    if device:
        devs = [d for d in devs if device.lower() in d.name.lower()]
    if not devs:
        return CheckRow(
            item="audio output",
            expected=f"stereo device {device or '(default)'}",
            found="none",
            status="fail",
            fix="Connect the headphones/sound card (or start PulseAudio) and check "
            "`avlab devices`; choose one with --audio-device.",
        )
    d = devs[0]
    return CheckRow(
        item="audio output",
        expected=f"stereo device {device or '(default)'}",
        found=f"{d.name} ({d.max_output_channels} ch)",
        status="pass",
    )


def check_display(
    measured_hz: float | None, expected_hz: float | None, tol: float = 0.05
) -> CheckRow:
    """Compare the measured refresh rate with the protocol's."""
    exp = "any" if expected_hz is None else f"{expected_hz:g} Hz (+-{tol * 100:.0f} %)"
    if measured_hz is None:
        return CheckRow(
            item="display refresh",
            expected=exp,
            found="not measured",
            status="warn",
            fix="The presenter measures it when the window opens.",
        )
    ok = expected_hz is None or abs(measured_hz - expected_hz) <= tol * expected_hz
    return CheckRow(
        item="display refresh",
        expected=exp,
        found=f"{measured_hz:.2f} Hz",
        status="pass" if ok else "fail",
        fix="" if ok else "Set the monitor's refresh rate in the display settings.",
    )


def check_neon(address: str | None, *, min_battery: float = 20.0) -> list[CheckRow]:
    """Battery and storage of a Pupil Labs Neon (through its real-time API).

    Parameters
    ----------
    address : str | None
        ``host`` or ``host:port`` of the Companion app; None discovers it.
    min_battery : float
        Lowest acceptable battery, %.

    Returns
    -------
    rows : list of CheckRow
    """
    try:
        from avlab.devices.neon import NeonAdapter

        if address:
            host, _, port = address.partition(":")
            neon = NeonAdapter.connect(host, int(port or 8080))
        else:
            neon = NeonAdapter.discover_one(5.0)
        try:
            status = neon.status()
        finally:
            neon.close()
    except Exception as exc:  # noqa: BLE001 - any failure is a failed check row
        logger.debug("neon check failed", exc_info=True)
        return [CheckRow(item="Neon", expected="reachable", found=str(exc), status="fail",
                         fix="Open the Neon Companion app on the same network.")]  # fmt: skip
    bat = float(status.battery_percent)
    free = status.free_storage_bytes / 1e9
    return [
        CheckRow(item="Neon battery", expected=f">= {min_battery:g} %", found=f"{bat:.0f} %",
                 status="pass" if bat >= min_battery else "fail", fix="Charge the phone."),
        CheckRow(item="Neon storage", expected=">= 4 GB free", found=f"{free:.1f} GB",
                 status="pass" if free >= 4 else "fail", fix="Free space on the phone."),
    ]  # fmt: skip


def preflight_check(
    protocol: str,
    out_dir: Path,
    *,
    simulate: bool = False,
    sim_prefix: str = "sim-",
    audio_device: str | None = None,
    wait_s: float = 2.0,
) -> CheckReport:
    """Run the pre-flight checks of ``avlab check`` (streams, disk, audio, display, Neon).

    Parameters
    ----------
    protocol : str
        Protocol name or file.
    out_dir : Path
        Where the session would be written (disk space).
    simulate : bool
        Start the simulated lab for the check and check its streams.
    sim_prefix : str
        Stream-name prefix of the simulated lab.
    audio_device : str | None
        Part of the name of the audio output to use.
    wait_s : float
        LSL discovery time, s.

    Returns
    -------
    report : CheckReport
    """
    import threading

    from avlab.protocol import load_protocol, plan_session, planned_duration_s

    proto = load_protocol(protocol)
    plan = plan_session(proto, "1", "01")
    req = getattr(proto, "requirements", None)
    lab = None
    if simulate:
        from avlab.sim import SimConfig, SimLab

        lab = SimLab(SimConfig(prefix=sim_prefix)).start()
    try:
        streams = list_streams(wait_s)
        rows = check_streams(
            getattr(req, "streams", []) or [],
            streams=streams,
            prefix=sim_prefix if simulate else "",
        )
        mine = [s for s in streams if s.name.startswith(sim_prefix)] if simulate else streams
        rows.append(check_disk(Path(out_dir), estimate_bytes(mine, planned_duration_s(plan))))
        rows.append(check_audio_output(audio_device))
        display = getattr(req, "display", None)
        rows.append(check_display(None, getattr(display, "refresh_hz", None)))
        devices = getattr(req, "devices", None)
        if getattr(devices, "neon", False) and not simulate:
            rows.extend(check_neon(getattr(devices, "neon_address", None)))
    finally:
        if lab is not None:
            threading.Thread(target=lab.stop, daemon=True).start()
    return CheckReport(protocol=plan.protocol, rows=rows)
