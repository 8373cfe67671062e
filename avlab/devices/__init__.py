"""Real sources: LSL discovery, Pupil Labs Neon, cameras, microphones, screen mapping.

Hardware libraries (pupil-labs-realtime-api, OpenCV, sounddevice, pupil-apriltags)
are imported lazily inside the adapters, so importing this package stays cheap.
"""

from __future__ import annotations

from avlab.devices.camera import CameraError, CameraLostError, CameraRecorder, CameraResult
from avlab.devices.lsl import (
    AudioDevice,
    Camera,
    DeviceReport,
    StreamDescription,
    list_devices,
    list_streams,
)
from avlab.devices.microphone import (
    MicrophoneError,
    MicrophoneLostError,
    MicrophoneRecorder,
    MicrophoneResult,
    read_flac,
)
from avlab.devices.neon import (
    NeonAdapter,
    NeonBatteryLowError,
    NeonClockOffset,
    NeonConnectionLostError,
    NeonError,
    NeonInfo,
    NeonNotFoundError,
    NeonStatus,
    NeonStorageLowError,
    RelayResult,
)
from avlab.devices.screen import (
    DEFAULT_FACES,
    TAG_IDS,
    ScreenMapError,
    ScreenMapper,
    TagLayout,
    face_hit,
    sim_scene_homography,
    tag_image,
)

__all__ = [
    "DEFAULT_FACES",
    "TAG_IDS",
    "AudioDevice",
    "Camera",
    "CameraError",
    "CameraLostError",
    "CameraRecorder",
    "CameraResult",
    "DeviceReport",
    "MicrophoneError",
    "MicrophoneLostError",
    "MicrophoneRecorder",
    "MicrophoneResult",
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
    "ScreenMapError",
    "ScreenMapper",
    "StreamDescription",
    "TagLayout",
    "face_hit",
    "list_devices",
    "list_streams",
    "read_flac",
    "sim_scene_homography",
    "tag_image",
]
