"""Read API over a session folder: streams, aligned data, markers, truth, log."""

from __future__ import annotations

from avlab.session.models import MarkerTable, StreamData, StreamInfo
from avlab.session.reader import Session
from avlab.session.summary import SessionSummary, StreamSummary, summarize

__all__ = [
    "MarkerTable",
    "Session",
    "SessionSummary",
    "StreamData",
    "StreamInfo",
    "StreamSummary",
    "summarize",
]
