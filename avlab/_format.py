"""The session folder format: names and layout in one place.

Writers (``avlab.record``, ``avlab.session.xdf``) and readers (``avlab.session``)
both read these constants; nothing else spells a dataset name. See
``docs/session-format.md`` for the prose version.

Layout of ``session.h5`` (HDF5, written in SWMR mode, flushed at least once a
second)::

    /                       attrs: ROOT_ATTRS
    /streams/<key>/         one group per LSL stream, attrs: STREAM_ATTRS
        data                (n_samples, n_channels), dtype from channel_format;
                            string streams: variable-length UTF-8
        time_stamps         (n_samples,) float64, seconds, the SOURCE's clock as
                            LSL delivered it (no correction applied, as in XDF)
        clock_offsets       (n_offsets, 2) float64: [recorder time, offset] in
                            seconds; recorder time = source time + offset
        chunks              (n_chunks, 3) float64: [first sample index,
                            n_samples, recorder time of arrival]
        gaps                (n_gaps, 4) float64: [sample index where data resumed,
                            source time of last sample before, source time of
                            first sample after, recorder time of detection]
"""

from __future__ import annotations

FORMAT_VERSION = 1

SESSION_FILE = "session.h5"
LOG_FILE = "log.jsonl"
TRUTH_FILE = "sim_truth.json"
STATUS_FILE = "status.json"

STREAMS_GROUP = "streams"

DATA = "data"
TIME_STAMPS = "time_stamps"
CLOCK_OFFSETS = "clock_offsets"
CHUNKS = "chunks"
GAPS = "gaps"

#: Root attributes of session.h5.
ROOT_ATTRS = (
    "format_version",  # int, FORMAT_VERSION
    "avlab_version",  # str
    "created",  # ISO 8601 wall-clock time of the start, with time zone
    "created_lsl",  # float, recorder's LSL clock at the start (s)
    "hostname",  # str, recorder host
    "status",  # "recording" | "complete" | "incomplete" | "recovered"
    "participant",  # str, may be empty
    "session",  # str, may be empty
)

#: Attributes of each /streams/<key> group.
STREAM_ATTRS = (
    "name",
    "type",
    "channel_count",
    "nominal_srate",  # Hz; 0 for irregular streams
    "channel_format",  # LSL name: float32, double64, string, int32, int16, int8, int64
    "source_id",
    "hostname",
    "uid",
    "info_xml",  # full LSL stream info XML
    "clock_method",  # "lsl_time_correction" | "time_echo" | "none"
    "channel_labels",  # JSON list of str, from the stream's desc when present
)

#: Session status values.
STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"
STATUS_INCOMPLETE = "incomplete"
STATUS_RECOVERED = "recovered"

#: LSL channel_format name -> numpy dtype string (None: variable-length string).
LSL_DTYPES: dict[str, str | None] = {
    "float32": "float32",
    "double64": "float64",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "string": None,
}
