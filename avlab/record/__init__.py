"""Recording LSL streams into crash-safe session folders, recovery, XDF import."""

from __future__ import annotations

from avlab.record.recorder import Recorder, RecordSummary, StreamStatus, record
from avlab.record.recover import RecoverReport, recover
from avlab.record.writer import EventLog, SessionWriter, StreamSpec
from avlab.record.xdf import import_xdf

__all__ = [
    "EventLog",
    "RecordSummary",
    "Recorder",
    "RecoverReport",
    "SessionWriter",
    "StreamSpec",
    "StreamStatus",
    "import_xdf",
    "record",
    "recover",
]
