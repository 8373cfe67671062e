"""Real sources: LSL discovery, local cameras and audio devices."""

from __future__ import annotations

from avlab.devices.lsl import (
    AudioDevice,
    Camera,
    DeviceReport,
    StreamDescription,
    list_devices,
    list_streams,
)

__all__ = [
    "AudioDevice",
    "Camera",
    "DeviceReport",
    "StreamDescription",
    "list_devices",
    "list_streams",
]
