"""LSL stream descriptions of the simulated devices (names, ids, XML meta-data)."""

from __future__ import annotations

import hashlib

import pylsl

from avlab.sim.montage import HEAD_RADIUS_MM

__all__ = ["StreamSpec", "make_info", "source_id"]


def source_id(prefix: str, seed: int, kind: str) -> str:
    """Stable source_id of a simulated stream (same after a restart of the stream or the sim).

    Parameters
    ----------
    prefix, kind : str
        Stream-name prefix and stream kind (``"EEG"``, ``"Gaze"``, ...).
    seed : int
        Simulator seed.

    Returns
    -------
    source_id : str
    """
    digest = hashlib.sha1(f"{prefix}|{seed}|{kind}".encode()).hexdigest()[:12]
    return f"avlab-sim-{kind.lower()}-{digest}"


class StreamSpec:
    """What an outlet needs: LSL header fields and channel meta-data.

    Parameters
    ----------
    kind : str
        Simulated device kind (``"EEG"``, ...).
    name, type : str
        LSL name and type.
    channels : list of (label, unit, type)
        One entry per channel.
    srate : float
        Nominal rate, Hz (0: irregular).
    fmt : str
        LSL channel format (``"float32"``, ``"string"``, ...).
    sid : str
        source_id.
    """

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        type: str,
        channels: list[tuple[str, str, str]],
        srate: float,
        fmt: str,
        sid: str,
    ) -> None:
        self.kind, self.name, self.type = kind, name, type
        self.channels, self.srate, self.fmt, self.sid = channels, srate, fmt, sid
        self.positions = None
        self.extra: dict[str, dict[str, str]] = {}


def make_info(spec: StreamSpec, *, run_id: str, truth_file: str) -> pylsl.StreamInfo:
    """Build the StreamInfo with XDF-style ``desc`` meta-data.

    Parameters
    ----------
    spec : StreamSpec
        The stream.
    run_id : str
        Simulator run id.
    truth_file : str
        Absolute path of the truth JSON.

    Returns
    -------
    info : pylsl.StreamInfo
    """
    info = pylsl.StreamInfo(
        spec.name, spec.type, len(spec.channels), spec.srate, spec.fmt, spec.sid
    )
    desc = info.desc()
    desc.append_child_value("manufacturer", "avlab-sim")
    chans = desc.append_child("channels")
    for i, (label, unit, ctype) in enumerate(spec.channels):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", ctype)
        if spec.positions is not None:
            loc = ch.append_child("location")
            for axis, v in zip("XYZ", spec.positions[i] * HEAD_RADIUS_MM, strict=True):
                loc.append_child_value(axis, f"{v:.2f}")
    for group, fields in spec.extra.items():
        node = desc.append_child(group)
        for key, value in fields.items():
            node.append_child_value(key, value)
    sim = desc.append_child("avlab_sim")
    sim.append_child_value("run_id", run_id)
    sim.append_child_value("truth_file", truth_file)
    sim.append_child_value("kind", spec.kind)
    return info
