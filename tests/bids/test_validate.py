"""Validation: the official validator (offline) and avlab's cross-modal checks.

One tiny dataset (``_tiny.py``: mne-bids EEG, events with HED, eye tracking, manifest)
is built once per module; each test doctors a copy and asserts the exact issue codes.
The validator's JSON is parsed from stored samples (no deno needed); the live runs
are skipped with a reason when deno or the bundle is missing.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from _tiny import (
    GAZE_FS,
    SAMPLE_ERRORS_JSON,
    SAMPLE_JSON,
    TinyRun,
    build_tiny,
    rehash,
)
from rich.console import Console

from avlab.bids import official
from avlab.bids import validate as val
from avlab.bids.hed import validate_hed
from avlab.bids.models import DatasetManifest, Issue, ValidatorUnavailableError
from avlab.bids.validate import (
    ValidationReport,
    cross_checks,
    parse_validator_output,
    print_report,
    run_bids_validator,
    validate_dataset,
    validator_command,
    validator_env,
)

N_SIDECAR_KEYS = 16  # SIDECAR_KEY_RECOMMENDED per EEG file (.vhdr, .vmrk, .eeg)


def _validator_available() -> str:
    try:
        bundle, deno = official._bundle_path(), official._deno_path()
    except ValidatorUnavailableError as exc:
        return str(exc)
    return "" if bundle.is_file() and deno.is_file() else f"{bundle} or {deno} missing"


_NO_VALIDATOR = _validator_available()
needs_validator = pytest.mark.skipif(bool(_NO_VALIDATOR), reason=f"validator: {_NO_VALIDATOR}")


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return build_tiny(tmp_path_factory.mktemp("tiny") / "ds")


def _copy(master: TinyRun, dst: Path) -> TinyRun:
    shutil.copytree(master.root, dst)
    moved = {k: dst / v.relative_to(master.root) for k, v in vars(master).items()
             if isinstance(v, Path)}  # fmt: skip
    return dataclasses.replace(master, **moved)


@pytest.fixture
def tiny(master: TinyRun, tmp_path: Path) -> TinyRun:
    return _copy(master, tmp_path / "ds")


def _codes(issues: list[Issue]) -> Counter[tuple[str, str]]:
    return Counter((i.code, i.severity) for i in issues)


# -- official validator: stored output, command, offline run -------------------------------
def test_parse_stored_sample_clean() -> None:
    issues, summary = parse_validator_output(SAMPLE_JSON.read_text())
    assert len(issues) == 3 * N_SIDECAR_KEYS + 3
    assert {i.severity for i in issues} == {"warning"}
    assert {i.source for i in issues} == {"bids-validator"}
    base = Counter(i.code.split("/")[0] for i in issues)
    assert base == {"SIDECAR_KEY_RECOMMENDED": 49, "JSON_KEY_RECOMMENDED": 2}
    eeg = [i for i in issues if i.file.endswith("_eeg.vhdr")]
    assert len(eeg) == N_SIDECAR_KEYS
    first = next(i for i in issues if i.code == "JSON_KEY_RECOMMENDED/GeneratedBy")
    assert first.file == "dataset_description.json"
    assert first.message.startswith("A JSON file is missing a key listed as recommended.")
    assert summary["subjects"] == ["01"] and summary["sessions"] == ["01"]
    assert summary["tasks"] == ["tiny"] and summary["modalities"] == ["EEG"]
    assert summary["totalFiles"] == 16 and summary["schemaVersion"] == "1.2.7"


def test_parse_stored_sample_errors() -> None:
    issues, _ = parse_validator_output(SAMPLE_ERRORS_JSON.read_text())
    errors = [i for i in issues if i.severity == "error"]
    assert _codes(errors) == {
        ("HED_ERROR/TAG_INVALID", "error"): 2,
        ("NOT_INCLUDED", "error"): 1,
        ("STIMULUS_FILE_MISSING", "error"): 1,
    }
    stray = next(i for i in errors if i.code == "NOT_INCLUDED")
    assert stray.file == "sub-01/stray.txt" and ".bidsignore" in stray.message
    hed = next(i for i in errors if i.file.endswith("_events.json"))
    assert "Intertrial-thing" in hed.message and "[TAG_INVALID]" in hed.message
    stim = next(i for i in errors if i.code == "STIMULUS_FILE_MISSING")
    assert stim.message == "A stimulus file was declared but not found in the dataset."


def test_parse_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="issues"):
        parse_validator_output('{"summary": {}}')
    with pytest.raises(ValueError):
        parse_validator_output("bids-validator 3.0.2 crashed")


def test_command_has_no_network_permission(tmp_path: Path) -> None:
    cmd = validator_command(tmp_path, bundle=tmp_path / "b.js", deno_bin=tmp_path / "deno")
    assert cmd[:2] == [str(tmp_path / "deno"), "run"]
    assert not [
        a
        for a in cmd
        if a.startswith(("--allow-net", "--allow-write", "--allow-run", "--allow-all", "-A"))
    ]
    assert {"--allow-read", "--allow-env", "--no-prompt", "--no-remote"} <= set(cmd)
    assert cmd[-3:] == [str(tmp_path), "--format", "json"]
    assert (
        validator_command(
            tmp_path, ignore_warnings=True, bundle=tmp_path / "b.js", deno_bin=tmp_path / "deno"
        )[-1]
        == "--ignoreWarnings"
    )
    env = validator_env()
    assert env["DENO_NO_UPDATE_CHECK"] == "1" and env["NO_COLOR"] == "1"


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


@needs_validator
def test_live_run_offline_matches_sample(master: TinyRun) -> None:
    """The validator runs with the network namespace removed; same issues as the sample."""
    cmd = validator_command(master.root)
    if _unshare_works():
        cmd = ["unshare", "-rn", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=validator_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    live, summary = parse_validator_output(proc.stdout)
    stored, _ = parse_validator_output(SAMPLE_JSON.read_text())
    assert sorted((i.code, i.file) for i in live) == sorted((i.code, i.file) for i in stored)
    assert summary["subjects"] == ["01"]


@needs_validator
def test_clean_dataset_has_no_errors(master: TinyRun) -> None:
    report = validate_dataset(master.root)
    assert report.n_errors == 0
    assert report.n_warnings == 3 * N_SIDECAR_KEYS + 3
    assert [i for i in report.issues if i.source != "bids-validator"] == []
    assert report.summary["tasks"] == ["tiny"]
    data = json.loads(report.to_json())
    assert data["n_errors"] == 0 and data["n_warnings"] == 51 and len(data["issues"]) == 51
    only_errors = validate_dataset(master.root, ignore_warnings=True)
    assert only_errors.issues == [] and only_errors.summary["totalFiles"] == 16


def test_no_official(master: TinyRun) -> None:
    report = validate_dataset(master.root, official=False)
    assert report.issues == []
    assert report.summary == {"subjects": ["01"], "sessions": ["01"], "tasks": ["tiny"], "runs": 1}


def test_validator_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidatorUnavailableError, match=r"bundle .*nope\.js does not exist") as e:
        run_bids_validator(tmp_path, bundle=tmp_path / "nope.js")
    assert "--no-official" in e.value.hint and e.value.exit_code == 14
    js = tmp_path / "fake.js"
    js.write_text("// not the validator\n")
    monkeypatch.setattr(official, "_deno_path", lambda: tmp_path / "no-deno")
    with pytest.raises(ValidatorUnavailableError, match="cannot start deno"):
        run_bids_validator(tmp_path, bundle=js)


@needs_validator
def test_validator_garbage_and_timeout(tmp_path: Path) -> None:
    js = tmp_path / "fake.js"
    js.write_text('console.log("hello");\n')
    with pytest.raises(ValidatorUnavailableError, match="failed on .*hello"):
        run_bids_validator(tmp_path, bundle=js)
    js.write_text('console.error("boom"); Deno.exit(3);\n')
    with pytest.raises(ValidatorUnavailableError, match=r"exit code 3\): boom"):
        run_bids_validator(tmp_path, bundle=js)
    js.write_text("await new Promise((r) => setTimeout(r, 20000));\n")
    with pytest.raises(ValidatorUnavailableError, match="did not finish .* within 1 s"):
        run_bids_validator(tmp_path, bundle=js, timeout_s=1.0)


# -- avlab's cross-checks on doctored copies ------------------------------------------------
def test_clean_cross_checks(tiny: TinyRun) -> None:
    assert cross_checks(tiny.root) == []


def test_missing_stim_file(tiny: TinyRun) -> None:
    tiny.stim.unlink()
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {("AVLAB_STIM_FILE_MISSING", "error"): 1}
    assert issues[0].file == f"sub-01/ses-01/eeg/{tiny.stem}_events.tsv"
    assert "stimuli/tiny/s01.wav" in issues[0].message and "line 4" in issues[0].message


def _rewrite_gaze(
    tiny: TinyRun, keep_until_s: float | None = None, swap: int | None = None
) -> None:
    with gzip.open(tiny.physio, "rt") as f:
        lines = f.readlines()
    if keep_until_s is not None:
        lines = [ln for ln in lines if float(ln.split("\t")[0]) <= keep_until_s]
    if swap is not None:
        lines[swap], lines[swap + 1] = lines[swap + 1], lines[swap]
    with gzip.open(tiny.physio, "wt") as f:
        f.writelines(lines)


def test_truncated_gaze(tiny: TinyRun) -> None:
    # EEG: RecordingDuration = (2000 - 1) / 100 Hz = 19.99 s; gaze ends 0.4 s before:
    # within max(0.5 s, 1 %)
    _rewrite_gaze(tiny, keep_until_s=19.99 - 0.4 + 0.5 / GAZE_FS)
    rehash(tiny.root)
    assert cross_checks(tiny.root) == []
    _rewrite_gaze(tiny, keep_until_s=15.0)
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {
        ("AVLAB_DURATION_MISMATCH", "warning"): 1,
        ("AVLAB_FILE_CHANGED", "error"): 1,
    }
    mismatch = next(i for i in issues if i.code == "AVLAB_DURATION_MISMATCH")
    assert "ends at 15.000 s, the EEG at 19.990 s" in mismatch.message
    assert "difference -4.990 s, tolerance 0.50 s" in mismatch.message
    rehash(tiny.root)
    assert _codes(cross_checks(tiny.root)) == {("AVLAB_DURATION_MISMATCH", "warning"): 1}


def test_physio_time_order_and_start_time(tiny: TinyRun) -> None:
    _rewrite_gaze(tiny, swap=100)
    meta = json.loads(tiny.physio_json.read_text())
    meta["StartTime"] = 0.0
    tiny.physio_json.write_text(json.dumps(meta))
    rehash(tiny.root)
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {
        ("AVLAB_PHYSIO_TIME_NOT_MONOTONIC", "error"): 1,
        ("AVLAB_PHYSIO_START_TIME", "error"): 1,
    }
    mono = next(i for i in issues if i.code == "AVLAB_PHYSIO_TIME_NOT_MONOTONIC")
    assert "at 1 of 1005 rows (first at row 102)" in mono.message
    start = next(i for i in issues if i.code == "AVLAB_PHYSIO_START_TIME")
    assert "StartTime in its JSON is 0.0, the first timestamp is -0.100000 s" in start.message


def test_physio_unreadable(tiny: TinyRun) -> None:
    data = tiny.physio.read_bytes()
    tiny.physio.write_bytes(data[: len(data) // 2])
    rehash(tiny.root)
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {("AVLAB_PHYSIO_UNREADABLE", "error"): 1}
    assert issues[0].file.endswith("_recording-eye1_physio.tsv.gz")


def test_scan_timestamps_across_blocks(tmp_path: Path) -> None:
    t = np.arange(50_000) / 200.0
    t[30_000] = t[29_999]  # one repeat, far past the first read block
    p = tmp_path / "x_physio.tsv.gz"
    with gzip.open(p, "wt") as f:
        f.writelines(f"{v:.6f}\t1.0\n" for v in t)
    scan = val._scan_timestamps(p, block_bytes=4096)
    assert (scan.n, scan.n_not_increasing, scan.first_bad_row) == (50_000, 1, 30_001)
    assert scan.first == 0.0 and scan.last == pytest.approx(249.995, abs=1e-9)


def test_onset_beyond_end(tiny: TinyRun) -> None:
    with open(tiny.events_tsv, "a") as f:
        f.write("25.000000\t0.000000\tcue\tA\tn/a\tn/a\n")  # beyond the 19.99 s of EEG
        f.write("-1.000000\t0.000000\tcue\tA\tn/a\tn/a\n")  # before the first sample
        f.write("30.000000\t1.000000\tBAD_ACQ_SKIP\tn/a\tn/a\tn/a\n")  # excepted
    rehash(tiny.root)
    issues = cross_checks(tiny.root)
    # hedtools notices the appended rows are out of time order
    assert _codes(issues) == {
        ("AVLAB_EVENT_OUTSIDE_RECORDING", "error"): 1,
        ("HED_ONSETS_UNORDERED", "warning"): 1,
    }
    assert issues[0].message.startswith("2 events lie outside the EEG recording [0, 19.990] s:")
    assert "line 9 (cue at 25.000 s), line 10 (cue at -1.000 s)" in issues[0].message


def test_bad_hed_tag(tiny: TinyRun) -> None:
    meta = json.loads(tiny.events_json.read_text())
    meta["trial_type"]["HED"]["cue"] = "Sensory-event, Attended"  # not in HED 8.4.0
    tiny.events_json.write_text(json.dumps(meta))
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {("HED_TAG_INVALID", "error"): 1, ("AVLAB_FILE_CHANGED", "warning"): 1}
    hed = next(i for i in issues if i.source == "hed")
    assert hed.file == f"sub-01/ses-01/eeg/{tiny.stem}_events.json"
    assert "'Attended'" in hed.message and "key 'cue'" in hed.message


def test_hed_table_values_and_top_level_sidecar(tiny: TinyRun) -> None:
    text = tiny.events_tsv.read_text().replace("\tcue\tA\t", "\tcue\tA,B\t", 1)
    tiny.events_tsv.write_text(text)
    issues = validate_hed(tiny.events_json, tiny.events_tsv, root=tiny.root)
    assert _codes(issues) == {("HED_CHARACTER_INVALID", "error"): 1}
    assert "(row 2, column talker)" in issues[0].message  # hedtools counts the header
    assert issues[0].file == f"sub-01/ses-01/eeg/{tiny.stem}_events.tsv"
    # a top-level sidecar (inherited by the run) with a scalar key hedtools cannot read
    top = tiny.root / "task-tiny_events.json"
    top.write_text(json.dumps({"TaskName": "tiny", "side": {"HED": {"left": "Leftt"}}}))
    issues = [i for i in cross_checks(tiny.root) if i.source == "hed"]
    assert _codes(issues) == {
        ("HED_CHARACTER_INVALID", "error"): 1,
        ("HED_TAG_INVALID", "error"): 1,
    }
    assert {i.file for i in issues if i.code == "HED_TAG_INVALID"} == {"task-tiny_events.json"}


def test_changed_and_missing_files(tiny: TinyRun) -> None:
    eeg = tiny.eeg_dir / f"{tiny.stem}_eeg.eeg"
    data = bytearray(eeg.read_bytes())
    data[100] ^= 0xFF
    eeg.write_bytes(bytes(data))
    (tiny.eeg_dir / f"{tiny.stem}_channels.tsv").unlink()
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {
        ("AVLAB_FILE_CHANGED", "error"): 1,
        ("AVLAB_FILE_MISSING", "error"): 1,
    }
    changed = next(i for i in issues if i.code == "AVLAB_FILE_CHANGED")
    assert changed.file == f"sub-01/ses-01/eeg/{tiny.stem}_eeg.eeg"
    assert "recorded data must not change" in changed.message


def test_missing_modality(tmp_path: Path) -> None:
    run = build_tiny(tmp_path / "a", required=("audio", "eeg", "events", "eyetrack"))
    issues = cross_checks(run.root)
    assert _codes(issues) == {("AVLAB_MISSING_MODALITY", "error"): 1}
    assert f"run {run.stem} has no audio" in issues[0].message
    assert issues[0].file == f"sub-01/ses-01/eeg/{run.stem}_eeg.vhdr"
    run = build_tiny(
        tmp_path / "b",
        required=("eeg", "events", "eyetrack", "video"),
        missing_reasons={"video": "the simulated camera has no video file"},
    )
    issues = cross_checks(run.root)
    assert _codes(issues) == {("AVLAB_MISSING_MODALITY", "warning"): 1}
    assert "has no video: the simulated camera has no video file" in issues[0].message
    # not required, but the converter said why it is absent: reported as a warning
    run = build_tiny(tmp_path / "d", missing_reasons={"eyetrack-screen": "no screen mapping"})
    issues = cross_checks(run.root)
    assert _codes(issues) == {("AVLAB_MISSING_MODALITY", "warning"): 1}
    assert "has no eyetrack-screen: no screen mapping" in issues[0].message
    # eye tracking required but not written
    run = build_tiny(tmp_path / "c", gaze=False, required=("eeg", "events", "eyetrack"))
    assert _codes(cross_checks(run.root)) == {("AVLAB_MISSING_MODALITY", "error"): 1}


def test_sync_and_incomplete_run(tiny: TinyRun) -> None:
    path = DatasetManifest.path(tiny.root)
    man = DatasetManifest.load(tiny.root)
    man.runs[0].sync[0].offset_residual_rms_ms = 1.5
    man.runs[0].sync[0].dejitter_residual_max_ms = 7.0
    path.write_text(man.model_dump_json())
    issues = cross_checks(tiny.root)
    assert _codes(issues) == {
        ("AVLAB_SYNC_OFFSET_RESIDUAL", "warning"): 1,
        ("AVLAB_SYNC_DEJITTER_RESIDUAL", "warning"): 1,
    }
    assert {i.file for i in issues} == {"sourcedata/avlab/manifest.json"}
    assert "stream sim-Gaze: clock-offset residual 1.50 ms RMS > 1.0 ms" in issues[0].message
    man.runs[0].complete = False
    path.write_text(man.model_dump_json())
    assert ("AVLAB_RUN_INCOMPLETE", "error") in _codes(cross_checks(tiny.root))


# -- printing -----------------------------------------------------------------------------
def _render(report: ValidationReport) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    print_report(report, console)
    return console.export_text()


def test_print_report_full_grouped_and_verdict() -> None:
    issues, summary = parse_validator_output(SAMPLE_ERRORS_JSON.read_text())
    text = _render(ValidationReport(issues=issues, summary=summary))
    assert "Errors (4)" in text and "Warnings (" in text and "grouped by code" in text
    assert "sub-01/stray.txt" in text
    assert re.search(r"warning\s+│ SIDECAR_KEY_RECOMMENDED\s+│\s+49 │", text)
    assert re.search(r"warning\s+│ JSON_KEY_RECOMMENDED\s+│\s+2 │ dataset_description.json", text)
    n_warn = sum(i.severity == "warning" for i in issues)
    assert text.strip().splitlines()[-1] == (
        f"INVALID: 4 errors, {n_warn} warnings (bids-validator: {len(issues)})."
    )
    small = [
        Issue(code="AVLAB_X", severity="warning", file="a.tsv", message="fix [it]", source="avlab")
    ]
    text = _render(ValidationReport(issues=small))
    assert "AVLAB_X" in text and "fix [it]" in text
    assert text.strip().splitlines()[-1] == "VALID: 0 errors, 1 warnings (avlab: 1)."
    assert _render(ValidationReport()).strip() == "VALID: 0 errors, 0 warnings."
