"""Write session folders by hand, exactly as ``avlab/_format.py`` describes.

Used by the session tests (and importable from a subprocess to leave a file
that a crash left in SWMR mode).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from avlab import _format as fmt
from avlab.sim.truth import MarkerTruth, SimTruth, StreamClock, write_truth

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sync.synthetic import SynthStream, make_clock, make_stream  # noqa: E402

HOST_OFFSET = 37.0


@dataclass
class Recorded:
    name: str
    type: str
    channel_format: str
    clock_method: str
    synth: SynthStream
    data: np.ndarray  # (n, ch) numeric or object of str
    labels: list[str] = field(default_factory=list)


def markers_stream(name: str, values: list[str], t_true: np.ndarray) -> Recorded:
    clock = StreamClock(name=name, nominal_srate=0.0, stamping="source", host_offset_s=HOST_OFFSET)
    stamps = t_true + HOST_OFFSET
    t_off = np.arange(t_true[0] - 1.0, t_true[-1] + 5.0, 5.0)
    rng = np.random.default_rng(7)
    off = -HOST_OFFSET + rng.normal(0, 50e-6, t_off.size)
    synth = SynthStream(
        clock=clock,
        stamps=stamps,
        true=t_true,
        clock_offsets=np.column_stack([t_off, off]),
        gaps=np.zeros((0, 4)),
        lost=0,
    )
    data = np.array(values, dtype=object).reshape(-1, 1)
    return Recorded(name, "Markers", "string", "lsl_time_correction", synth, data)


def default_streams(duration_s: float = 40.0, eeg_gap: int = 250) -> list[Recorded]:
    rng = np.random.default_rng(3)
    eeg = make_stream(
        make_clock(
            "arrival",
            name="SimEEG",
            srate=1000.0,
            host_offset_s=HOST_OFFSET,
            rate_ppm=100.0,
            chunk_size=10,
            jitter_sd_s=1e-3,
            seed=11,
        ),
        duration_s=duration_s,
        gaps=((duration_s / 2, eeg_gap),) if eeg_gap else (),
        seed=12,
    )
    gaze = make_stream(
        make_clock("device", name="SimGaze", srate=200.0, device_offset_s=-5000.0, drift_ppm=150),
        duration_s=duration_s,
        offset_every_s=1.0,
        offset_noise_s=5e-4,
        outlier_frac=0.05,
        seed=13,
    )
    n_m = 12
    t_m = eeg.true[0] + np.linspace(1.0, duration_s - 2.0, n_m)
    values = []
    for i in range(n_m):
        if i % 3 == 2:
            values.append(f"plain-{i}")
        else:
            values.append(json.dumps({"event": "trial_start", "trial": i, "talker": i % 2}))
    return [
        Recorded(
            "SimEEG",
            "EEG",
            "float32",
            "lsl_time_correction",
            eeg,
            rng.normal(size=(eeg.stamps.size, 8)).astype(np.float32),
            [f"E{i}" for i in range(8)],
        ),
        Recorded(
            "SimGaze",
            "Gaze",
            "float32",
            "time_echo",
            gaze,
            rng.normal(size=(gaze.stamps.size, 3)).astype(np.float32),
            ["x", "y", "pupil"],
        ),
        markers_stream("SimMarkers", values, t_m),
    ]


def write_session(
    folder: Path,
    streams: list[Recorded],
    *,
    status: str = fmt.STATUS_COMPLETE,
    truth: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / fmt.SESSION_FILE
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs.update(
            {
                "format_version": fmt.FORMAT_VERSION,
                "avlab_version": "test",
                "created": "2026-11-23T10:15:00+01:00",
                "created_lsl": float(streams[0].synth.true[0] - 1.0),
                "hostname": "testhost",
                "status": status,
                "participant": "01",
                "session": "01",
            }
        )
        root = f.create_group(fmt.STREAMS_GROUP)
        for i, r in enumerate(streams):
            g = root.create_group(f"{i:02d}_{r.name}")
            g.attrs.update(
                {
                    "name": r.name,
                    "type": r.type,
                    "channel_count": r.data.shape[1],
                    "nominal_srate": r.synth.clock.nominal_srate,
                    "channel_format": r.channel_format,
                    "source_id": f"src-{r.name}",
                    "hostname": "simhost",
                    "uid": f"uid-{i}",
                    "info_xml": "<info/>",
                    "clock_method": r.clock_method,
                    "channel_labels": json.dumps(r.labels),
                }
            )
            n, ch = r.data.shape
            if r.channel_format == "string":
                dt = h5py.string_dtype("utf-8")
                g.create_dataset(
                    fmt.DATA,
                    data=r.data.astype(str).astype(object),
                    dtype=dt,
                    maxshape=(None, ch),
                    chunks=True,
                )
            else:
                g.create_dataset(fmt.DATA, data=r.data, maxshape=(None, ch), chunks=True)
            g.create_dataset(fmt.TIME_STAMPS, data=r.synth.stamps, maxshape=(None,), chunks=True)
            g.create_dataset(
                fmt.CLOCK_OFFSETS, data=r.synth.clock_offsets, maxshape=(None, 2), chunks=True
            )
            first = np.arange(0, n, 10)
            chunks = np.column_stack(
                [first, np.minimum(10, n - first), r.synth.true[np.minimum(first + 9, n - 1)]]
            )
            g.create_dataset(fmt.CHUNKS, data=chunks.astype(float), maxshape=(None, 3), chunks=True)
            g.create_dataset(fmt.GAPS, data=r.synth.gaps, maxshape=(None, 4), chunks=True)
    if truth:
        sim = SimTruth(
            run_id="test",
            seed=0,
            host_offset_s=HOST_OFFSET,
            streams={r.name: r.synth.clock for r in streams},
            markers=[
                MarkerTruth(t_true=float(t), value=str(v))
                for r in streams
                if r.channel_format == "string"
                for t, v in zip(r.synth.true, r.data[:, 0], strict=True)
            ],
        )
        write_truth(sim, folder / fmt.TRUTH_FILE)
    (folder / fmt.LOG_FILE).write_text(
        json.dumps({"t": 1.0, "event": "start"})
        + "\n"
        + json.dumps({"t": 2.0, "event": "stop"})
        + "\n"
        + '{"t": 3.0, "ev'  # torn last line, as after a crash
    )
    return folder


def leave_swmr_open(path: Path) -> None:
    """Reopen ``path`` for SWMR writing in a subprocess that dies without closing."""
    code = (
        "import h5py, os, sys\n"
        "f = h5py.File(sys.argv[1], 'r+', libver='latest')\n"
        "f.swmr_mode = True\n"
        "f.flush()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=dict(os.environ))
