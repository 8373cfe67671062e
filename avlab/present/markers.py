"""The presenter's LSL marker stream, stamped with the time of what was shown or heard.

PsychoPy's clock (``core.getTime``), sounddevice/PortAudio's stream clock and
LSL's ``local_clock`` are different time bases. :class:`ClockMap` measures the
offset of each to ``pylsl.local_clock`` (the minimum-bracket pair over a few
reads) so that a flip time or an audio onset becomes an LSL time stamp.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pylsl

from avlab import __version__

__all__ = ["ClockMap", "MarkerOutlet"]


class ClockMap:
    """Offset from another clock to ``pylsl.local_clock`` (seconds).

    Parameters
    ----------
    other : callable
        Returns the other clock's time in seconds.
    n : int
        Reads; the pair with the shortest LSL bracket wins.
    """

    def __init__(self, other: Callable[[], float], n: int = 25) -> None:
        best = None
        for _ in range(n):
            a = pylsl.local_clock()
            o = other()
            b = pylsl.local_clock()
            if best is None or b - a < best[0]:
                best = (b - a, 0.5 * (a + b) - o)
        assert best is not None
        self.uncertainty_s, self.offset_s = best

    def to_lsl(self, t: float) -> float:
        """Convert a time of the other clock to LSL time."""
        return t + self.offset_s


def marker_stream_info(name: str, source_id: str) -> pylsl.StreamInfo:
    """Describe the presenter's marker stream (type ``Markers``, one JSON string channel)."""
    info = pylsl.StreamInfo(name, "Markers", 1, 0.0, "string", source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", "avlab")
    desc.append_child_value("avlab_version", __version__)
    desc.append_child_value("marker_times", "actual flip or audio onset (LSL clock)")
    ch = desc.append_child("channels").append_child("channel")
    ch.append_child_value("label", "event")
    ch.append_child_value("unit", "json")
    ch.append_child_value("type", "Marker")
    return info


class MarkerOutlet:
    """JSON markers on an irregular string LSL stream (type ``Markers``).

    Parameters
    ----------
    name : str
        Stream name.
    source_id : str
        Source id ('' makes one).
    """

    def __init__(self, name: str, source_id: str = "") -> None:
        self.source_id = source_id or f"avlab-presenter-{uuid.uuid4().hex[:8]}"
        self.outlet = pylsl.StreamOutlet(marker_stream_info(name, self.source_id))
        self.name = name
        self.n_pushed = 0

    def push(self, event: str, t_lsl: float, **fields: object) -> dict:
        """Push one marker stamped ``t_lsl``; return it as a dict."""
        m = {"event": event, **fields}
        self.outlet.push_sample([json.dumps(m, separators=(",", ":"))], t_lsl)
        self.n_pushed += 1
        return m
