"""Dataset report: runs, durations, modalities present and missing; table and HTML."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from _tiny import DURATION_S, FS, build_tiny
from rich.console import Console

from avlab.bids.models import DatasetManifest
from avlab.bids.report import dataset_report, find_runs, print_dataset_report, write_html

RECORDED_S = (DURATION_S * FS - 1) / FS  # mne-bids' RecordingDuration: last sample time


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sub-01 complete with audio; sub-02 without the eye tracking its protocol demands."""
    root = tmp_path_factory.mktemp("rep") / "ds"
    build_tiny(
        root,
        subject="01",
        audio=True,
        required=("audio", "eeg", "events", "eyetrack"),
        missing_reasons={"eyetrack-screen": "no screen mapping"},
    )
    build_tiny(
        root,
        subject="02",
        gaze=False,
        required=("eeg", "events", "eyetrack", "video"),
        missing_reasons={"video": "the simulated camera has no video file"},
    )
    return root


def test_rows_and_missing(two_subjects: Path) -> None:
    rep = dataset_report(two_subjects)
    assert (rep.subjects, rep.sessions, rep.n_runs) == (["01", "02"], ["01"], 2)
    assert rep.total_duration_s == pytest.approx(2 * RECORDED_S, abs=1e-9)
    one, two = rep.rows
    assert one.stem() == "sub-01_ses-01_task-tiny_run-01"
    assert one.modalities == ["eeg", "events", "eyetrack", "audio"]
    assert one.missing == {"eyetrack-screen": "no screen mapping"}  # not required, but a reason
    assert (one.n_events, one.n_trials, one.source) == (7, 1, "01_01_folder")
    assert one.duration_s == pytest.approx(RECORDED_S, abs=1e-9)
    assert two.modalities == ["eeg", "events"]
    assert two.missing == {
        "eyetrack": "required by the protocol; no file written",
        "video": "the simulated camera has no video file",
    }
    assert rep.missing == {"eyetrack-screen": 1, "eyetrack": 1, "video": 1}


def test_without_manifest_and_duration_from_file(two_subjects: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(two_subjects, root)
    DatasetManifest.path(root).unlink()
    eeg_json = root / "sub-02/ses-01/eeg/sub-02_ses-01_task-tiny_run-01_eeg.json"
    meta = json.loads(eeg_json.read_text())
    del meta["RecordingDuration"]
    eeg_json.write_text(json.dumps(meta))
    rep = dataset_report(root)
    two = rep.rows[1]
    # other runs of the task have eye tracking and audio: reported as missing here
    assert two.missing == {
        "audio": "other runs of task tiny have it",
        "eyetrack": "other runs of task tiny have it",
    }
    assert two.duration_s == DURATION_S  # .eeg size / (4 channels x 4 bytes) / 100 Hz
    assert two.source == "" and rep.rows[0].missing == {}


def test_run_in_manifest_but_gone(two_subjects: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(two_subjects, root)
    shutil.rmtree(root / "sub-02")
    rep = dataset_report(root)
    assert rep.n_runs == 2 and len(find_runs(root)) == 1
    gone = rep.rows[1]
    assert gone.subject == "02" and gone.modalities == []
    assert set(gone.missing) == {"eeg", "events", "eyetrack", "video"}
    assert gone.missing["eeg"] == "listed in the manifest, no file in the dataset"


def test_table_and_html(two_subjects: Path, tmp_path: Path) -> None:
    rep = dataset_report(two_subjects)
    console = Console(record=True, width=220, file=io.StringIO())
    print_dataset_report(rep, console)
    text = console.export_text(clear=False)
    assert "sub-02_ses-01_task-tiny_run-01" in text
    assert "eyetrack (required by the protocol; no file written)" in text
    assert (
        "2 subjects, 1 sessions, 2 runs, 40.0 s of EEG; "
        "missing: eyetrack-screen in 1 runs, eyetrack in 1 runs, video in 1 runs" in text
    )
    styled = console.export_html(inline_styles=True)
    assert "color: #800000" in styled or "color: #ff0000" in styled  # missing in red

    out = write_html(rep, tmp_path / "out" / "report.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<tr><td>sub-0") == 2
    assert '<span class="missing">eyetrack</span> (required by the protocol; no file written)' in (
        page
    )
    assert "<svg" in page and page.count("<rect ") == 2 and "0.3 min" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "<li>2 subjects, 1 sessions, 2 runs</li>" in page
