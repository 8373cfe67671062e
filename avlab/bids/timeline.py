"""One time line for a BIDS run: seconds on the EEG file's own sample clock.

Everything avlab writes into a run (event onsets, eye-tracking ``timestamp`` and
``StartTime``, media ``StartTime``) is in seconds τ on the axis of the EEG file:
τ = file sample index / nominal rate. The recorder's aligned EEG times map any
recorder time onto that axis by interpolation, which absorbs the amplifier's rate
error (50 ppm is 0.18 s after an hour), so an onset times the rate is the sample.

Gaps in the EEG (samples the amplifier never delivered) are padded with zeros in the
file so that τ stays uniform; each pad is reported as a ``BAD_ACQ_SKIP`` span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from avlab.errors import SessionError
from avlab.session import Session, StreamInfo

__all__ = ["Timeline", "eeg_stream"]


def eeg_stream(session: Session) -> StreamInfo:
    """Return the session's EEG stream (type ``EEG``, the first if several).

    Raises
    ------
    SessionError
        The session has no EEG stream or it holds fewer than two samples.
    """
    infos = [i for i in session.streams if i.type.upper() == "EEG" and i.is_regular]
    if not infos or infos[0].n_samples < 2:
        raise SessionError(
            f"{session.path} has no EEG stream with data; a BIDS run is built on the EEG.",
            hint="Check that the amplifier's LSL stream (type EEG) was recorded "
            "(`avlab inspect` lists the streams).",
        )
    return infos[0]


@dataclass(frozen=True)
class Timeline:
    """Recorder time ↔ EEG-file seconds for one session.

    Attributes
    ----------
    fs : float
        Nominal EEG rate (Hz).
    eeg_times : ndarray, shape (n_samples,)
        Aligned recorder times of the recorded EEG samples (s).
    file_index : ndarray of int64, shape (n_samples,)
        Index in the file of each recorded sample (recorded index + pads before it).
    n_file_samples : int
        Samples in the file, pads included.
    pads : list of (int, int)
        ``(recorded index where data resumed, n zero samples inserted before it)``.
    acq_time : datetime
        Wall-clock time (UTC) of the file's first sample.
    """

    fs: float
    eeg_times: np.ndarray
    file_index: np.ndarray
    n_file_samples: int
    pads: list[tuple[int, int]]
    acq_time: datetime

    @classmethod
    def from_session(cls, session: Session, eeg: StreamInfo | None = None) -> Timeline:
        """Build the time line from a session's EEG stream.

        Parameters
        ----------
        session : Session
            The open session.
        eeg : StreamInfo | None
            The EEG stream (default: :func:`eeg_stream`).

        Returns
        -------
        timeline : Timeline
        """
        eeg = eeg or eeg_stream(session)
        fs = float(eeg.nominal_srate)
        times = np.asarray(session.aligned_times(eeg).times, dtype=np.float64)
        n = times.size
        pads: list[tuple[int, int]] = []
        for row in session.gaps(eeg):
            k = int(row[0])
            if 0 < k < n:
                n_pad = int(round((times[k] - times[k - 1]) * fs)) - 1
                if n_pad > 0:
                    pads.append((k, n_pad))
        shift = np.zeros(n, dtype=np.int64)
        for k, n_pad in pads:
            shift[k:] += n_pad
        file_index = np.arange(n, dtype=np.int64) + shift
        attrs = session.attrs
        created = datetime.fromisoformat(str(attrs.get("created") or "1970-01-01T00:00:00+00:00"))
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        created_lsl = float(attrs.get("created_lsl") or times[0])
        acq = created.astimezone(UTC) + timedelta(seconds=float(times[0]) - created_lsl)
        return cls(
            fs=fs,
            eeg_times=times,
            file_index=file_index,
            n_file_samples=int(file_index[-1]) + 1,
            pads=pads,
            acq_time=acq,
        )

    @property
    def duration_s(self) -> float:
        """Length of the EEG file (s)."""
        return self.n_file_samples / self.fs

    def _slope(self) -> float:
        span = self.eeg_times[-1] - self.eeg_times[0]
        return float((self.file_index[-1] - self.file_index[0]) / self.fs / span)

    def tau(self, t: np.ndarray | float) -> np.ndarray:
        """Map recorder times to EEG-file seconds (linear beyond both ends).

        Parameters
        ----------
        t : ndarray or float
            Aligned recorder times (s), any shape.

        Returns
        -------
        tau : ndarray
            Same shape, seconds from the file's first sample.
        """
        t = np.asarray(t, dtype=np.float64)
        shape = t.shape
        t = t.reshape(-1)
        x, y = self.eeg_times, self.file_index / self.fs
        out = np.interp(t, x, y)
        slope = self._slope()
        lo, hi = t < x[0], t > x[-1]
        out[lo] = y[0] + (t[lo] - x[0]) * slope
        out[hi] = y[-1] + (t[hi] - x[-1]) * slope
        return out.reshape(shape)

    def recorder_time(self, tau: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`tau`: EEG-file seconds to recorder times (s)."""
        tau = np.asarray(tau, dtype=np.float64)
        shape = tau.shape
        tau = tau.reshape(-1)
        x, y = self.file_index / self.fs, self.eeg_times
        out = np.interp(tau, x, y)
        slope = 1.0 / self._slope()
        lo, hi = tau < x[0], tau > x[-1]
        out[lo] = y[0] + (tau[lo] - x[0]) * slope
        out[hi] = y[-1] + (tau[hi] - x[-1]) * slope
        return out.reshape(shape)

    def pad_spans(self) -> list[tuple[float, float]]:
        """``(onset, duration)`` in EEG-file seconds of every zero-padded gap."""
        spans = []
        for k, n_pad in self.pads:
            start = int(self.file_index[k]) - n_pad
            spans.append((start / self.fs, n_pad / self.fs))
        return spans
