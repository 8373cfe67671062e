"""Typed objects returned by the session read API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from avlab.sync import SyncQuality

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MarkerTable", "StreamData", "StreamInfo"]


class StreamInfo(BaseModel):
    """Description of one recorded stream (attributes of ``/streams/<key>``).

    ``nominal_srate`` in Hz (0: irregular); ``n_samples`` as readable now.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str
    type: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    source_id: str
    hostname: str
    channel_labels: list[str]
    n_samples: int
    clock_method: str

    @property
    def is_regular(self) -> bool:
        """Whether the stream has a nominal rate (> 0 Hz)."""
        return self.nominal_srate > 0

    @property
    def is_string(self) -> bool:
        """Whether samples are strings (marker streams)."""
        return self.channel_format == "string"


@dataclass(frozen=True)
class StreamData:
    """Samples of one stream with their times.

    Attributes
    ----------
    info : StreamInfo
        The stream's description.
    data : ndarray, shape (n_samples, n_channels)
        Samples; dtype from the channel format (``object`` of ``str`` for
        string streams).
    times : ndarray, shape (n_samples,)
        Seconds on the recorder's clock: aligned (clock fit, dejittered) when
        read with ``aligned=True``, else the raw source stamps.
    raw_stamps : ndarray, shape (n_samples,)
        Source time stamps as recorded, in seconds.
    quality : SyncQuality | None
        Alignment quality; None when read with ``aligned=False``.
    """

    info: StreamInfo
    data: np.ndarray
    times: np.ndarray
    raw_stamps: np.ndarray
    quality: SyncQuality | None = None

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.times.size)


@dataclass(frozen=True)
class MarkerTable:
    """All markers of a session, sorted by aligned time.

    Attributes
    ----------
    times : ndarray, shape (n_markers,)
        Aligned times in seconds on the recorder's clock.
    streams : list of str
        Name of the stream each marker came from.
    values : list of str
        The marker strings (first channel).
    fields : dict of str to list
        Columns parsed from markers whose value is a JSON object, one list of
        length n_markers per key (None where a marker lacks the key).
    """

    times: np.ndarray
    streams: list[str]
    values: list[str]
    fields: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.times.size)

    def to_pandas(self) -> pd.DataFrame:
        """Return the table as a DataFrame (requires pandas).

        Returns
        -------
        df : pandas.DataFrame
            Columns ``time``, ``stream``, ``value`` and one per JSON field.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "MarkerTable.to_pandas needs pandas; install it with `pip install pandas`."
            ) from exc
        cols: dict[str, Any] = {"time": self.times, "stream": self.streams, "value": self.values}
        cols.update({k: v for k, v in self.fields.items() if k not in cols})
        return pd.DataFrame(cols)
