"""The EEG-file time line: drift absorbed, gaps padded, extrapolation at both ends."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "session"))

from sessionfactory import default_streams, write_session  # noqa: E402

from avlab.bids.timeline import Timeline, eeg_stream  # noqa: E402
from avlab.errors import SessionError  # noqa: E402
from avlab.session import Session  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # EEG at 1000 Hz, 100 ppm fast, a 250-sample gap half-way
    return write_session(tmp_path_factory.mktemp("tl") / "sub-01", default_streams(40.0, 250))


def test_gap_padded_and_samples_on_the_grid(folder: Path) -> None:
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
        n = eeg_stream(s).n_samples
    assert len(tl.pads) == 1
    k, n_pad = tl.pads[0]
    assert n_pad == 250  # the samples the amplifier did not send
    assert tl.n_file_samples == n + 250
    # recorded samples land exactly on their file index
    np.testing.assert_allclose(tl.tau(tl.eeg_times) * tl.fs, tl.file_index, atol=1e-6)
    ((onset, dur),) = tl.pad_spans()
    assert onset * tl.fs == pytest.approx(tl.file_index[k] - 250)
    assert dur == pytest.approx(0.25)


def test_rate_error_absorbed_and_inverse(folder: Path) -> None:
    with Session.open(folder) as s:
        tl = Timeline.from_session(s)
    # a naive t - t0 would drift by 100 ppm x 40 s = 4 ms; tau stays on the samples
    t = tl.eeg_times[-1]
    naive = t - tl.eeg_times[0]
    assert abs(naive - tl.tau(t)) > 1e-3
    mid = np.linspace(tl.eeg_times[0] - 2, tl.eeg_times[-1] + 2, 101)
    np.testing.assert_allclose(tl.recorder_time(tl.tau(mid)), mid, atol=1e-9)
    # scalar in, scalar-shaped out; extrapolation is linear with the fitted rate
    assert np.ndim(tl.tau(float(tl.eeg_times[0]))) == 0
    assert tl.tau(tl.eeg_times[0] - 1.0) == pytest.approx(-1.0, abs=1e-3)


def test_no_eeg_is_a_clear_error(tmp_path: Path) -> None:
    streams = [s for s in default_streams(5.0, 0) if s.type != "EEG"]
    with Session.open(write_session(tmp_path / "sub-x", streams)) as s:
        with pytest.raises(SessionError, match="no EEG stream"):
            Timeline.from_session(s)
