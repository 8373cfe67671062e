"""Round trip: simulated sessions of every protocol -> BIDS -> read back.

Each protocol in ``protocols/`` is simulated offline (``avlab.sim.offline``, one or two
trials, small EEG), converted with ``avlab bids convert``, and read back with
``mne_bids.read_raw_bids``, avlab's physio reader and avlab's session reader. Asserted:
the EEG is bit-identical, event onsets equal the markers' times on the EEG time line,
gaze samples equal the recorded ones within the format's precision, the official
validator reports 0 errors. Then idempotence, adding subjects, conflicts,
``--overwrite`` and ``--deidentify``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avlab.bids.convert import ConvertOptions, convert_sessions
from avlab.bids.models import BidsConflictError, DatasetManifest
from avlab.bids.physio import read_physio
from avlab.bids.timeline import Timeline, eeg_stream
from avlab.bids.validate import validate_dataset
from avlab.cli.commands import app
from avlab.session import Session
from avlab.sim.config import EEGConfig, SimConfig
from avlab.sim.offline import simulate_session

PROTOCOLS = ["competing-talkers", "attention-switch", "av-speech-in-noise", "conversation"]
SCREEN = {"screen_size_m": (0.531, 0.299), "screen_distance_m": 0.65}


def _config(seed: int = 0) -> SimConfig:
    return SimConfig(seed=seed, eeg=EEGConfig(n_channels=16, srate=250.0))


@pytest.fixture(scope="module")
def stimuli(stimuli_cache: Path) -> Path:
    return stimuli_cache


def _simulate(protocol: str, out: Path, stimuli: Path, participant: str = "01",
              session: str = "01", seed: int = 0) -> Path:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    return simulate_session(
        protocol, out, participant=participant, session=session,
        stimuli_dir=stimuli / protocol, max_trials=1, config=_config(seed), seed=seed,
    )  # fmt: skip


def _read_raw(root: Path, stem: dict[str, str]):  # noqa: ANN202 - mne type
    from mne_bids import BIDSPath, read_raw_bids

    bp = BIDSPath(root=root, datatype="eeg", **stem)
    with warnings.catch_warnings():
        # mne-bids notes the physio files beside the EEG it does not read
        warnings.simplefilter("ignore", RuntimeWarning)
        return read_raw_bids(bp, verbose="ERROR")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_round_trip_every_protocol(protocol: str, tmp_path: Path, stimuli: Path) -> None:
    folder = _simulate(protocol, tmp_path / "sessions", stimuli)
    root = tmp_path / "bids"
    res = convert_sessions([folder], ConvertOptions(bids_root=root, **SCREEN), progress=False)
    (r,) = res.runs
    assert r.status == "written"
    stem = {"subject": r.subject, "session": r.session, "task": r.task, "run": r.run}
    raw = _read_raw(root, stem)
    with Session.open(folder) as s:
        eeg = s.read(eeg_stream(s))
        tl = Timeline.from_session(s)
        markers = s.markers()
        gaze = s.read("Gaze")
    # EEG: float32 µV stored bit-exactly (no gaps in a simulated run)
    assert not tl.pads
    np.testing.assert_array_equal(raw.get_data(), eeg.data.T.astype(np.float64) * 1e-6)
    assert raw.info["sfreq"] == tl.fs
    # events: every marker at its time on the EEG time line (1 µs: %.6f)
    events_tsv = root / f"sub-{r.subject}/ses-{r.session}/eeg"
    tsv = next(events_tsv.glob("*_events.tsv"))
    lines = [ln.split("\t") for ln in tsv.read_text().splitlines()]
    cols = lines[0]
    onsets = {
        (row[cols.index("trial_type")], float(row[0]))
        for row in lines[1:]
        if row[cols.index("trial_type")] not in ("speech", "noise")
    }
    expected = tl.tau(markers.times)
    kinds = markers.fields["event"]
    for kind, tau in zip(kinds, expected, strict=True):
        assert any(k == kind and abs(o - tau) < 1e-6 for k, o in onsets), (kind, tau)
    # annotations read back by MNE carry the same onsets
    ann = raw.annotations
    assert len(ann) == len(lines) - 1
    np.testing.assert_allclose(sorted(ann.onset), sorted(float(x[0]) for x in lines[1:]), atol=1e-6)
    # every stim_file exists under stimuli/
    si = cols.index("stim_file")
    for row in lines[1:]:
        if row[si] != "n/a":
            assert (root / "stimuli" / row[si]).is_file(), row[si]
    # gaze: timestamps on the EEG time line, px within %.2f
    physio = next(events_tsv.glob("*_recording-eye1_physio.tsv.gz"))
    meta, columns = read_physio(physio)
    np.testing.assert_allclose(columns["timestamp"], tl.tau(gaze.times), atol=1e-6)
    np.testing.assert_allclose(columns["x_coordinate"], gaze.data[:, 0], atol=0.006)
    assert meta["StartTime"] == pytest.approx(columns["timestamp"][0], abs=1e-6)
    # official validator and avlab's checks: no errors
    report = validate_dataset(root)
    errors = [i for i in report.issues if i.severity == "error"]
    assert not errors, errors


def test_idempotent_add_subject_conflict_overwrite(tmp_path: Path, stimuli: Path) -> None:
    protocol = "competing-talkers"
    first = _simulate(protocol, tmp_path / "s1", stimuli, participant="01")
    root = tmp_path / "bids"
    opts = ConvertOptions(bids_root=root, **SCREEN)
    convert_sessions([first], opts, progress=False)
    snapshot = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    # re-running changes nothing, not even modification times
    res = convert_sessions([first], opts, progress=False)
    assert [r.status for r in res.runs] == ["unchanged"]
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    assert after == snapshot
    # a second subject adds rows and leaves the first alone
    second = _simulate(protocol, tmp_path / "s2", stimuli, participant="02", seed=1)
    convert_sessions([second], opts, progress=False)
    participants = (root / "participants.tsv").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in participants[1:]] == ["sub-01", "sub-02"]
    for p, (_, data) in snapshot.items():
        if "sub-01" in str(p):
            assert p.read_bytes() == data, p
    # different data for an existing run: refused, nothing written; --overwrite replaces
    other = _simulate(protocol, tmp_path / "s3", stimuli, participant="01", seed=2)
    manifest = DatasetManifest.load(root)
    entry = next(e for e in manifest.runs if e.subject == "01")
    bp = root / next(iter(entry.files))
    before = bp.read_bytes()
    # same subject/session/task, a different recording: it becomes run 02, not a conflict
    res = convert_sessions([other], opts, progress=False)
    assert res.runs[0].run == "02"
    assert bp.read_bytes() == before
    # a changed conversion option for run 01 is a conflict ...
    with pytest.raises(BidsConflictError, match="--overwrite"):
        convert_sessions([first], ConvertOptions(bids_root=root, line_freq_hz=60.0, **SCREEN),
                         progress=False)  # fmt: skip
    # ... and --overwrite rewrites it
    res = convert_sessions(
        [first],
        ConvertOptions(bids_root=root, line_freq_hz=60.0, overwrite=True, **SCREEN),
        progress=False,
    )
    assert res.runs[0].status == "overwritten"
    eeg_json = next((root / "sub-01/ses-01/eeg").glob("*run-01_eeg.json"))
    assert json.loads(eeg_json.read_text())["PowerLineFrequency"] == 60.0


def test_deidentify_leaves_no_names_or_dates(tmp_path: Path, stimuli: Path) -> None:
    folder = _simulate("competing-talkers", tmp_path / "s", stimuli, participant="alice")
    root = tmp_path / "bids"
    convert_sessions([folder], ConvertOptions(bids_root=root, deidentify=True, **SCREEN),
                     progress=False)  # fmt: skip
    with Session.open(folder) as s:
        created = str(s.attrs["created"])[:10]  # YYYY-MM-DD
        host = str(s.attrs["hostname"])
    needles = [b"alice", created.encode(), folder.name.encode(), str(tmp_path).encode()]
    if len(host) > 3:
        needles.append(host.encode())
    for p in root.rglob("*"):
        if not p.is_file() or "sourcedata" in p.parts:
            continue
        data = p.read_bytes()
        if p.suffix == ".gz":
            import gzip

            data = gzip.decompress(data)
        for needle in needles:
            assert needle not in data, (p, needle)
    key = json.loads((root / "sourcedata/avlab/deidentification.json").read_text())
    assert key["subjects"] == {"alice": "01"}
    assert (root / "sub-01").is_dir()
    scans = (root / "sub-01/ses-01/sub-01_ses-01_scans.tsv").read_text()
    year = int(scans.splitlines()[1].split("\t")[1][:4])
    assert year < 1925


def test_cli_convert_validate_report(tmp_path: Path, stimuli: Path) -> None:
    folder = _simulate("competing-talkers", tmp_path / "s", stimuli)
    root = tmp_path / "bids"
    runner = CliRunner()
    env = {"COLUMNS": "200", **os.environ}
    res = runner.invoke(app, ["bids", "convert", str(folder), "--bids-root", str(root),
                              "--screen-size", "0.531,0.299", "--screen-distance", "0.65"],
                        env=env)  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["bids", "validate", str(root), "--json"], env=env)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert not [i for i in report["issues"] if i["severity"] == "error"]
    res = runner.invoke(app, ["bids", "report", str(root)], env=env)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bids-report.html").is_file()
    # a folder that is not a session: one red line naming it, exit 6, no traceback
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "avlab", "bids", "convert", str(tmp_path), "--bids-root",
         str(root)], capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    assert "no session file" in proc.stderr and "Traceback" not in proc.stderr
