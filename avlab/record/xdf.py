"""Import a LabRecorder XDF file as an avlab session folder (``avlab import-xdf``).

The XDF file is read with pyxdf *without* clock synchronization or
dejittering, so that the session holds what the recorder saw: raw source time
stamps and the clock offsets (``clock_times``, ``clock_values``) measured
during the recording, exactly as ``avlab record`` stores them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from avlab import _format as fmt
from avlab._logging import logger
from avlab.errors import OutputError, SessionError
from avlab.record.writer import SessionWriter, StreamSpec, check_output_parent

__all__ = ["import_xdf"]

_GAP_MIN_S = 0.25


def _first(d: dict[str, Any], key: str, default: str = "") -> str:
    v = d.get(key)
    if isinstance(v, list):
        v = v[0] if v else default
    return default if v is None else str(v)


def _to_xml(tag: str, value: Any) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(value, dict):
        for k, v in value.items():
            for item in v if isinstance(v, list) else [v]:
                el.append(_to_xml(k, item))
    elif isinstance(value, list):
        for item in value:
            el.append(_to_xml(tag, item))
    elif value is not None:
        el.text = str(value)
    return el


def _channel_labels(info: dict[str, Any]) -> list[str]:
    try:
        chans = info["desc"][0]["channels"][0]["channel"]
        return [str((c.get("label") or [""])[0] or "") for c in chans]
    except (KeyError, IndexError, TypeError):
        return []


def _spec(stream: dict[str, Any]) -> StreamSpec:
    info = stream["info"]
    fmt_name = _first(info, "channel_format", "float32")
    if fmt_name not in fmt.LSL_DTYPES:
        fmt_name = "float32"
    return StreamSpec(
        name=_first(info, "name", "stream"),
        type=_first(info, "type"),
        channel_count=int(_first(info, "channel_count", "1")),
        nominal_srate=float(_first(info, "nominal_srate", "0")),
        channel_format=fmt_name,
        source_id=_first(info, "source_id"),
        hostname=_first(info, "hostname"),
        uid=_first(info, "uid"),
        info_xml=ET.tostring(
            _to_xml("info", {k: v for k, v in info.items() if not k.startswith("effective")}),
            encoding="unicode",
        ),
        clock_method="lsl_time_correction",
        channel_labels=_channel_labels(info),
    )


def _gaps(stamps: np.ndarray, srate: float) -> np.ndarray:
    if srate <= 0 or len(stamps) < 2:
        return np.zeros(0, dtype=np.int64)
    thr = max(1.5 / srate, _GAP_MIN_S)
    return np.flatnonzero(np.abs(np.diff(stamps)) > thr) + 1


def import_xdf(xdf_file: Path | str, out_dir: Path | str, *, overwrite: bool = False) -> Path:
    """Convert an XDF file into a session folder.

    Parameters
    ----------
    xdf_file : Path or str
        The ``.xdf`` (or ``.xdfz``) file.
    out_dir : Path or str
        Existing, writable directory; the session folder ``<xdf stem>`` is
        created in it.
    overwrite : bool
        Replace an existing session folder of the same name.

    Returns
    -------
    folder : Path
        The session folder written (status ``complete``).

    Raises
    ------
    SessionError
        The XDF file is missing or cannot be parsed.
    OutputError
        ``out_dir`` is missing or not writable, or the session folder exists.
    """
    import pyxdf

    src = Path(xdf_file)
    if not src.is_file():
        raise SessionError(f"XDF file {src} not found.", "Check the path.")
    out = Path(out_dir)
    check_output_parent(out)
    folder = out / src.name.split(".")[0]
    if folder.exists():
        if not overwrite:
            raise OutputError(
                f"session folder {folder} already exists.",
                "Remove it, choose another OUT_DIR, or pass overwrite=True.",
            )
        import shutil

        shutil.rmtree(folder)
    if not src.name.endswith("z"):
        with open(src, "rb") as fh:
            magic = fh.read(4)
        if magic != b"XDF:":
            raise SessionError(
                f"cannot read XDF file {src}: it does not start with the XDF magic 'XDF:'.",
                "Check that it is an XDF file (LabRecorder writes them).",
            )
    try:
        streams, header = pyxdf.load_xdf(
            str(src), synchronize_clocks=False, dejitter_timestamps=False
        )
    except Exception as exc:  # noqa: BLE001 - pyxdf raises many kinds on bad input
        raise SessionError(
            f"cannot read XDF file {src}: {type(exc).__name__}: {exc}.",
            "Check that it is an XDF file written completely (LabRecorder).",
        ) from exc
    if not streams:
        raise SessionError(f"XDF file {src} holds no streams.", "Check the recording.")
    specs = [_spec(s) for s in streams]
    created = float("nan")
    for s in streams:
        if len(s["time_stamps"]):
            created = (
                min(created, float(s["time_stamps"][0]))
                if created == created
                else float(s["time_stamps"][0])
            )
    writer = SessionWriter(
        folder, specs, created_lsl=0.0 if created != created else created, swmr=False
    )
    try:
        for i, (s, spec) in enumerate(zip(streams, specs, strict=True)):
            stamps = np.asarray(s["time_stamps"], dtype=np.float64)
            series = s["time_series"]
            if spec.is_string:
                data = np.empty((len(stamps), spec.channel_count), dtype=object)
                if len(stamps):
                    data[:] = [[str(v) for v in row] for row in series]
            else:
                data = np.asarray(series, dtype=spec.dtype).reshape(len(stamps), -1)
            if len(stamps):
                writer.append_samples(i, data, stamps, float("nan"))
            for t, off in zip(s.get("clock_times", []), s.get("clock_values", []), strict=False):
                writer.append_clock_offset(i, float(t), float(off))
            for j in _gaps(stamps, spec.nominal_srate):
                writer.append_gap(i, int(j), float(stamps[j - 1]), float(stamps[j]), float("nan"))
        hdr = header.get("info", {}) if isinstance(header, dict) else {}
        writer.log.write("import", f"imported {src} ({len(streams)} streams, header {hdr})")
        writer.flush()
    except BaseException:
        writer.close(fmt.STATUS_INCOMPLETE)
        raise
    writer.close(fmt.STATUS_COMPLETE)
    logger.info("imported %s into %s", src, folder)
    return folder
