"""Finding the LSL streams to record, by name or type."""

from __future__ import annotations

import time

import pylsl

from avlab.devices.lsl import describe_info
from avlab.errors import StreamNotFoundError

__all__ = ["resolve_requested"]


def _match(infos: list[pylsl.StreamInfo], want: str) -> list[pylsl.StreamInfo]:
    by_name = [i for i in infos if i.name() == want]
    return by_name if by_name else [i for i in infos if i.type() == want]


def resolve_requested(streams: list[str] | None, *, wait_s: float = 5.0) -> list[pylsl.StreamInfo]:
    """Resolve the streams to record.

    Parameters
    ----------
    streams : list of str or None
        Names or types; each selects the streams whose name equals it, else
        those whose type equals it. None records every stream visible after
        ``wait_s``.
    wait_s : float
        How long to wait for the requested streams to appear, in seconds.

    Returns
    -------
    infos : list of pylsl.StreamInfo
        Unique by uid, in the order requested.

    Raises
    ------
    StreamNotFoundError
        A requested stream (or, without a request, any stream) is not visible
        within ``wait_s``.
    """
    deadline = time.monotonic() + wait_s
    infos: list[pylsl.StreamInfo] = []
    while True:
        remaining = deadline - time.monotonic()
        infos = pylsl.resolve_streams(wait_time=min(max(remaining, 0.2), 1.0))
        if streams is None:
            if infos and remaining <= 0:
                break
        elif all(_match(infos, s) for s in streams):
            break
        if remaining <= 0:
            break
    if streams is None:
        chosen = infos
    else:
        missing = [s for s in streams if not _match(infos, s)]
        if missing:
            visible = sorted({f"{i.name()} ({i.type()})" for i in infos})
            raise StreamNotFoundError(
                f"LSL stream {', '.join(repr(m) for m in missing)} not found after "
                f"{wait_s:g} s; visible: {', '.join(visible) if visible else 'none'}.",
                "Check that the source is running and on this network, the spelling of "
                "--stream (a name or a type), or wait longer with --wait.",
            )
        chosen = [i for s in streams for i in _match(infos, s)]
    if not chosen:
        raise StreamNotFoundError(
            f"no LSL stream visible after {wait_s:g} s.",
            "Start the sources (or `avlab sim`) first, or wait longer with --wait.",
        )
    unique: dict[str, pylsl.StreamInfo] = {}
    for info in chosen:
        unique.setdefault(info.uid(), info)
    return (
        sorted(unique.values(), key=lambda i: describe_info(i).name)
        if streams is None
        else [*unique.values()]
    )
