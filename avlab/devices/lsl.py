"""LSL discovery and local device probes (``avlab devices``).

Everything here is read-only and quick: resolving the LSL streams visible on
the network (within ``wait_s``), and listing local cameras (``/dev/video*``)
and audio devices (``sounddevice`` when importable, else ``/proc/asound/cards``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from avlab._logging import logger

if TYPE_CHECKING:
    import pylsl

__all__ = [
    "AudioDevice",
    "Camera",
    "DeviceReport",
    "StreamDescription",
    "describe_info",
    "list_audio_devices",
    "list_cameras",
    "list_devices",
    "list_streams",
    "parse_desc",
    "portaudio_devices",
]


class StreamDescription(BaseModel):
    """An LSL stream as seen by discovery.

    ``nominal_srate`` is in Hz (0 for irregular streams).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    source_id: str
    hostname: str
    uid: str


class Camera(BaseModel):
    """A local video device node."""

    model_config = ConfigDict(extra="forbid")

    path: str
    name: str = ""


class AudioDevice(BaseModel):
    """A local audio device; channel counts are 0 when unknown."""

    model_config = ConfigDict(extra="forbid")

    index: int
    name: str
    max_input_channels: int = 0
    max_output_channels: int = 0
    default_samplerate: float = 0.0


class DeviceReport(BaseModel):
    """Everything ``avlab devices`` shows."""

    model_config = ConfigDict(extra="forbid")

    streams: list[StreamDescription] = Field(default_factory=list)
    cameras: list[Camera] = Field(default_factory=list)
    audio: list[AudioDevice] = Field(default_factory=list)


_FORMATS = {
    1: "float32",
    2: "double64",
    3: "string",
    4: "int32",
    5: "int16",
    6: "int8",
    7: "int64",
}


def describe_info(info: pylsl.StreamInfo) -> StreamDescription:
    """Convert a pylsl ``StreamInfo`` into a :class:`StreamDescription`.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A resolved (or inlet) stream info.

    Returns
    -------
    desc : StreamDescription
    """
    return StreamDescription(
        name=info.name(),
        type=info.type(),
        channel_count=info.channel_count(),
        nominal_srate=info.nominal_srate(),
        channel_format=_FORMATS.get(info.channel_format(), "float32"),
        source_id=info.source_id(),
        hostname=info.hostname(),
        uid=info.uid(),
    )


def list_streams(wait_s: float = 1.0) -> list[StreamDescription]:
    """Resolve the LSL streams visible within ``wait_s``.

    Parameters
    ----------
    wait_s : float
        How long to listen for stream announcements, in seconds.

    Returns
    -------
    streams : list of StreamDescription
        Sorted by name, then source_id; duplicates (same uid) removed.
    """
    import pylsl

    infos = pylsl.resolve_streams(wait_time=wait_s)
    seen: dict[str, StreamDescription] = {}
    for info in infos:
        d = describe_info(info)
        seen.setdefault(d.uid, d)
    return sorted(seen.values(), key=lambda d: (d.name, d.source_id))


def parse_desc(info_xml: str) -> dict[str, str | list[str]]:
    """Pull avlab-relevant fields out of a full stream-info XML.

    Parameters
    ----------
    info_xml : str
        The XML of ``inlet.info().as_xml()``.

    Returns
    -------
    fields : dict
        ``channel_labels`` (list of str) always; ``time_echo_host``,
        ``time_echo_port`` when the desc has ``<time_echo>``; ``truth_file``
        when it has ``<avlab_sim><truth_file>``.
    """
    out: dict[str, str | list[str]] = {"channel_labels": []}
    try:
        root = ET.fromstring(info_xml)
    except ET.ParseError as exc:
        logger.warning("unparseable stream info XML: %s", exc)
        return out
    desc = root.find("desc")
    if desc is None:
        return out
    labels = [(c.findtext("label") or "").strip() for c in desc.findall("channels/channel")]
    out["channel_labels"] = labels if any(labels) else []
    host = desc.findtext("time_echo/host")
    port = desc.findtext("time_echo/port")
    if host and port:
        out["time_echo_host"] = host.strip()
        out["time_echo_port"] = port.strip()
    truth = desc.findtext("avlab_sim/truth_file")
    if truth:
        out["truth_file"] = truth.strip()
    return out


def list_cameras() -> list[Camera]:
    """List ``/dev/video*`` nodes with their V4L2 names when readable.

    Returns
    -------
    cameras : list of Camera
    """
    cams = []
    for node in sorted(Path("/dev").glob("video*"), key=lambda p: _natural(p.name)):
        name_file = Path("/sys/class/video4linux") / node.name / "name"
        try:
            name = name_file.read_text().strip()
        except OSError:
            name = ""
        cams.append(Camera(path=str(node), name=name))
    return cams


def portaudio_devices() -> list[AudioDevice]:
    """Audio devices as PortAudio numbers them (through ``sounddevice``).

    Returns
    -------
    devices : list of AudioDevice
        ``index`` is the sounddevice/PortAudio device index.

    Raises
    ------
    ImportError, OSError
        sounddevice or PortAudio cannot be loaded.
    Exception
        PortAudio's own (untyped) errors from the device query.
    """
    import sounddevice as sd  # type: ignore[import-not-found]

    return [
        AudioDevice(
            index=i,
            name=str(d["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
        )
        for i, d in enumerate(sd.query_devices())
    ]


def list_audio_devices() -> list[AudioDevice]:
    """List audio devices via ``sounddevice``, else from ``/proc/asound/cards``.

    Returns
    -------
    devices : list of AudioDevice
    """
    try:
        return portaudio_devices()
    except (ImportError, OSError) as exc:
        logger.debug("sounddevice unavailable: %s", exc)
    except Exception as exc:  # noqa: BLE001 - PortAudio errors are not typed
        logger.debug("sounddevice query failed: %s", exc)
    devices = []
    try:
        text = Path("/proc/asound/cards").read_text()
    except OSError:
        return devices
    for m in re.finditer(r"^\s*(\d+)\s+\[[^\]]*\]:\s*(.+)$", text, re.MULTILINE):
        devices.append(AudioDevice(index=int(m.group(1)), name=m.group(2).strip()))
    return devices


def list_devices(wait_s: float = 1.0) -> DeviceReport:
    """LSL streams, cameras and audio devices of this machine.

    Parameters
    ----------
    wait_s : float
        LSL discovery time in seconds.

    Returns
    -------
    report : DeviceReport
    """
    return DeviceReport(
        streams=list_streams(wait_s), cameras=list_cameras(), audio=list_audio_devices()
    )


def _natural(s: str) -> tuple[str, int]:
    m = re.match(r"(\D*)(\d*)", s)
    assert m is not None
    return m.group(1), int(m.group(2) or 0)
