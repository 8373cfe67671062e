"""Reading sessions: lookup, aligned data, markers, truth, log, crashed and corrupt files."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from sessionfactory import default_streams, leave_swmr_open
from typer.testing import CliRunner

from avlab import _format as fmt
from avlab.errors import SessionError, StreamNotFoundError
from avlab.session import Session, summarize


def test_streams_and_lookup(session_dir: Path) -> None:
    with Session.open(session_dir) as s:
        assert [i.name for i in s.streams] == ["SimEEG", "SimGaze", "SimMarkers"]
        eeg = s.stream("EEG")
        assert (eeg.name, eeg.channel_count, eeg.nominal_srate) == ("SimEEG", 8, 1000.0)
        assert eeg.channel_labels[:2] == ["E0", "E1"]
        assert eeg.n_samples == 40_000
        assert s.stream("SimGaze").clock_method == "time_echo"
        with pytest.raises(StreamNotFoundError, match=r"no stream named or typed 'ECG'.*SimEEG"):
            s.stream("ECG")


def test_ambiguous_type(make_session: Callable[..., Path]) -> None:
    streams = default_streams(duration_s=10.0)
    streams[1].type = "EEG"
    with Session.open(make_session(streams)) as s:
        with pytest.raises(StreamNotFoundError, match="'EEG' is ambiguous.*SimEEG.*SimGaze"):
            s.stream("EEG")
        assert s.stream("SimGaze").type == "EEG"  # exact name wins


def test_read_aligned_against_truth(session_dir: Path) -> None:
    with Session.open(session_dir / fmt.SESSION_FILE) as s:
        truth = s.truth
        assert truth is not None
        for name in ("SimEEG", "SimGaze", "SimMarkers"):
            d = s.read(name)
            true = truth.match_samples(name, d.raw_stamps)
            assert np.all(np.isfinite(true))
            err = np.abs(d.times - true) * 1e3
            assert np.median(err) < 0.25 and np.percentile(err, 99) < 1.0, name
            assert d.data.shape[0] == d.times.size == d.raw_stamps.size
        raw = s.read("EEG", aligned=False)
        assert raw.quality is None
        np.testing.assert_array_equal(raw.times, raw.raw_stamps)
        assert raw.times[0] - s.read("EEG").times[0] == pytest.approx(37.0, abs=2e-3)
        assert s.read("EEG").quality.n_segments == 2


def test_markers_table(session_dir: Path) -> None:
    with Session.open(session_dir) as s:
        m = s.markers()
    assert len(m) == 12
    assert np.all(np.diff(m.times) > 0)
    assert m.values[2] == "plain-2"
    assert m.fields["trial"][:3] == [0, 1, None]
    assert m.fields["event"][0] == "trial_start"
    assert set(m.streams) == {"SimMarkers"}


def test_log_skips_torn_line(session_dir: Path) -> None:
    with Session.open(session_dir) as s:
        assert [e["event"] for e in s.log()] == ["start", "stop"]


def test_crashed_swmr_file_opens(
    make_session: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    folder = make_session(default_streams(duration_s=10.0), status=fmt.STATUS_RECORDING)
    leave_swmr_open(folder / fmt.SESSION_FILE)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(folder / fmt.SESSION_FILE, "r")
    with caplog.at_level(logging.WARNING, logger="avlab"), Session.open(folder) as s:
        assert s.swmr and s.status == "recording"
        assert s.read("Gaze").n_samples == 2000
    assert "avlab recover" in caplog.text


def test_corrupt_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="no session file at .*session.h5"):
        Session.open(tmp_path)
    (tmp_path / fmt.SESSION_FILE).write_bytes(b"\x00garbage" * 100)
    with pytest.raises(SessionError, match="cannot be read as HDF5") as info:
        Session.open(tmp_path)
    assert "avlab recover" in info.value.hint
    with h5py.File(tmp_path / fmt.SESSION_FILE, "w") as f:
        f.create_group("other")
    with pytest.raises(SessionError, match="not an avlab session"):
        Session.open(tmp_path / fmt.SESSION_FILE)


def test_truncated_file_is_corrupt(session_dir: Path, tmp_path: Path) -> None:
    src = session_dir / fmt.SESSION_FILE
    dst = tmp_path / fmt.SESSION_FILE
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    # Either the open or the first read notices; both name the file and the fix.
    with pytest.raises(SessionError, match=str(dst)) as info:
        with Session.open(tmp_path) as s:
            summarize(s.folder)
    assert "avlab recover" in info.value.hint


def test_summary_samples_lost_and_sync_error(session_dir: Path) -> None:
    summary = summarize(session_dir)
    by = {st.name: st for st in summary.streams}
    assert summary.status == "complete" and summary.has_truth
    assert by["SimEEG"].samples == 40_000
    assert by["SimEEG"].samples_lost == 250
    assert by["SimEEG"].gaps == 1
    assert by["SimGaze"].samples_lost == 0
    assert by["SimEEG"].effective_srate == pytest.approx(1000.1, abs=1e-3)
    assert by["SimGaze"].clock.drift_ppm == pytest.approx(-150, abs=20)
    for st in summary.streams:
        assert st.sync_error_ms is not None and st.sync_error_ms.n == st.samples
        assert st.sync_error_ms.p99 < 1.0


def test_inspect_json_cli(session_dir: Path) -> None:
    import avlab.cli.inspect  # noqa: F401  registers the command
    from avlab.cli import app

    res = CliRunner().invoke(app, ["inspect", str(session_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    eeg = next(st for st in out["streams"] if st["name"] == "SimEEG")
    assert eeg["samples"] == 40_000 and eeg["samples_lost"] == 250
    assert set(eeg["sync_error_ms"]) >= {"median", "p99"}
    assert eeg["sync_error_ms"]["p99"] < 1.0
    table = CliRunner().invoke(app, ["inspect", str(session_dir)])
    assert table.exit_code == 0 and "SimGaze" in table.stdout


def test_no_truth_no_sync_error(make_session: Callable[..., Path]) -> None:
    folder = make_session(default_streams(duration_s=10.0), truth=False)
    summary = summarize(folder)
    assert not summary.has_truth
    assert all(st.sync_error_ms is None for st in summary.streams)
    shutil.rmtree(folder)
