"""Pre-flight rows: streams against requirements, disk space, display."""

from __future__ import annotations

from dataclasses import dataclass

from avlab.devices.lsl import StreamDescription
from avlab.run.check import check_disk, check_display, check_streams, estimate_bytes


@dataclass
class Req:
    type: str
    name: str | None = None
    min_srate_hz: float | None = None
    max_srate_hz: float | None = None
    channels: int | None = None
    optional: bool = False


def _desc(name: str, type_: str, rate: float, ch: int) -> StreamDescription:
    return StreamDescription(
        name=name, type=type_, channel_count=ch, nominal_srate=rate, channel_format="float32",
        source_id=name, hostname="lab", uid=name,
    )  # fmt: skip


def test_streams_pass_fail_and_reason() -> None:
    visible = [_desc("x-EEG", "EEG", 500, 32), _desc("x-Gaze", "Gaze", 200, 5)]
    rows = check_streams(
        [
            Req("EEG", min_srate_hz=250, channels=32),
            Req("Gaze", min_srate_hz=250),
            Req("Audio"),
            Req("VideoFrames", optional=True),
            Req("Markers"),
        ],
        streams=visible,
        prefix="x-",
    )
    status = [r.status for r in rows]
    assert status == ["pass", "fail", "fail", "warn", "pass"]
    assert "rate 200 Hz < 250 Hz" in rows[1].fix
    assert "not visible" == rows[2].found and "avlab devices" in rows[2].fix
    assert "presenter" in rows[4].found


def test_prefix_hides_other_labs_streams() -> None:
    rows = check_streams([Req("EEG")], streams=[_desc("other-EEG", "EEG", 500, 32)], prefix="x-")
    assert rows[0].status == "fail"


def test_disk_and_estimate(tmp_path) -> None:
    n = estimate_bytes([_desc("e", "EEG", 1000, 64)], 3600.0)
    assert 1.0e9 < n < 1.5e9  # 64 ch x 4 B + 8 B stamp at 1 kHz for 1 h, +25 %, +50 MB
    assert check_disk(tmp_path, 1000).status == "pass"
    row = check_disk(tmp_path, 10**18)
    assert row.status == "fail" and "Free disk space" in row.fix


def test_display() -> None:
    assert check_display(59.9, 60.0).status == "pass"
    assert check_display(50.0, 60.0).status == "fail"
    assert check_display(None, 60.0).status == "warn"
