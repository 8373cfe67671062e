"""The EEG of a BIDS run: streamed to BrainVision (or EDF), copied in by mne-bids.

``mne_bids.write_raw_bids`` converts a preloaded recording by holding it all in
memory as float64 (8 GB for an hour of 64 channels at 1000 Hz). A raw object read
*lazily* from a file already in a BIDS format takes mne-bids' copy branch instead
(file copy plus header patch), so avlab streams the session's EEG block by block
into a staged file under ``<root>/.avlab-tmp-<uuid>/``, reads it back without
loading it, sets channel types, positions and line frequency, and lets mne-bids
copy it and write ``channels.tsv``, ``eeg.json``, ``scans.tsv`` and the electrode
files. Memory stays at one block (60 s) whatever the recording's length.

BrainVision (default) stores the recorder's float32 samples with resolution 1.0 in
their own unit (µV for EEG), so MNE reads back ``float64(x) * 1e-6`` exactly.
EDF stores int16 in 1-s data records with per-channel physical ranges from a first
pass over the data: samples come back within half a quantization step.

Gaps in the EEG (``Timeline.pads``) are filled with zeros so the file's sample
clock stays uniform; ``events.tsv`` marks them ``BAD_ACQ_SKIP`` (written by
:mod:`avlab.bids.events`, not here).

Electrode positions
-------------------
Written only when the stream's LSL metadata (``<desc><channels><channel>
<location><X><Y><Z>``) gives a position for every EEG channel. The XDF meta-data
convention puts them in millimetres in a head-centred frame: x to the right, y to
the front (nasion), z up. Anatomical landmarks are taken from ``<desc><fiducials>``
when the stream has them (Nasion, LPA, RPA); MNE then transforms the positions into
its head frame (written by mne-bids as BIDS ``CapTrak``). Without them (avlab's
simulator, most amplifiers) NAS, LPA and RPA are *assumed* where the +y, -x and +x
axes meet a sphere of the electrodes' mean radius: that frame satisfies the CapTrak
definition by construction, so the positions are written unchanged, and
``coordsystem.json`` says in ``EEGCoordinateSystemDescription`` that nothing was
digitized. The simulator's positions are idealized points on a 95-mm sphere.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import h5py
import numpy as np

from avlab import __version__
from avlab import _format as fmt
from avlab._logging import logger
from avlab.bids._io import read_tsv, write_json, write_tsv
from avlab.bids.models import BidsRun, LabInfo
from avlab.bids.timeline import Timeline, eeg_stream
from avlab.errors import AvlabError, OutputError
from avlab.session import Session, StreamInfo

if TYPE_CHECKING:
    import mne

__all__ = [
    "EegChannel",
    "EegFormatError",
    "EegMeta",
    "EegOutput",
    "read_eeg_meta",
    "stream_brainvision",
    "stream_edf",
    "write_eeg",
]

#: Rows per HDF5 read (60 s at 1000 Hz; 15 MB for 64 float32 channels).
BLOCK_ROWS = 60_000
#: LSL channel ``<type>`` → MNE channel type; anything else becomes ``misc``.
_TYPES = {"EEG": "eeg", "EOG": "eog", "ECG": "ecg", "EKG": "ecg", "EMG": "emg"}
#: LSL channel ``<unit>`` → BrainVision/EDF unit; anything else is written as ``n/a``.
_UNITS = {
    "microvolts": "µV", "microvolt": "µV", "uv": "µV", "µv": "µV", "μv": "µV",
    "millivolts": "mV", "millivolt": "mV", "mv": "mV", "volts": "V", "volt": "V", "v": "V",
}  # fmt: skip
_FIDUCIALS = {
    "nasion": "nasion", "nas": "nasion", "nz": "nasion",
    "lpa": "lpa", "lpf": "lpa", "lpa_": "lpa", "left_preauricular": "lpa",
    "rpa": "rpa", "rpf": "rpa", "right_preauricular": "rpa",
}  # fmt: skip
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DATA_EXTENSIONS = (".vhdr", ".vmrk", ".eeg", ".edf", ".bdf", ".set", ".fdt")


class EegFormatError(AvlabError, ValueError):
    """The EEG cannot be written in the requested file format."""

    exit_code = 2


@dataclass(frozen=True)
class EegOutput:
    """What :func:`write_eeg` wrote.

    Attributes
    ----------
    files : list of Path
        Every file written for the run's EEG: the data file(s), ``eeg.json``,
        ``channels.tsv`` and, with positions, ``electrodes.tsv/.json`` and
        ``coordsystem.json`` (the last three are shared by the session's runs).
    n_channels : int
        Channels in the file.
    n_file_samples : int
        Samples per channel in the file, zero pads included (EDF: rounded up to
        whole 1-s records).
    duration_s : float
        Length of the file (s).
    sfreq : float
        Sampling rate (Hz).
    """

    files: list[Path]
    n_channels: int
    n_file_samples: int
    duration_s: float
    sfreq: float


@dataclass(frozen=True)
class EegChannel:
    """One channel as the stream's LSL metadata describes it.

    Attributes
    ----------
    name : str
        Label (unique; ``E<n>`` where the stream gives none).
    kind : str
        MNE channel type: ``eeg``, ``eog``, ``ecg``, ``emg`` or ``misc``.
    unit : str
        Unit in the file: ``µV``, ``mV``, ``V`` or ``n/a``.
    pos_mm : tuple of 3 float | None
        Position (mm; x right, y front, z up), None when not given.
    """

    name: str
    kind: str
    unit: str
    pos_mm: tuple[float, float, float] | None


@dataclass(frozen=True)
class EegMeta:
    """What the EEG stream's LSL metadata says about its channels and device.

    Attributes
    ----------
    channels : list of EegChannel
        One per data column, in order.
    fiducials_mm : dict of str to tuple of 3 float
        ``nasion``, ``lpa``, ``rpa`` (mm) when the stream gives all three, else empty.
    manufacturer, model, serial : str
        Amplifier facts (``""`` when not given).
    """

    channels: list[EegChannel]
    fiducials_mm: dict[str, tuple[float, float, float]]
    manufacturer: str
    model: str
    serial: str


# -- stream metadata ---------------------------------------------------------------
def _xyz(node: ET.Element | None) -> tuple[float, float, float] | None:
    if node is None:
        return None
    try:
        xyz = tuple(float(node.findtext(a) or "nan") for a in "XYZ")
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in xyz) or not any(xyz):
        return None
    return xyz  # type: ignore[return-value]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}-{n}")
    return out


def read_eeg_meta(session: Session, info: StreamInfo) -> EegMeta:
    """Read channel names, types, units and positions from the stream's LSL XML.

    Parameters
    ----------
    session : Session
        The open session.
    info : StreamInfo
        The EEG stream.

    Returns
    -------
    meta : EegMeta
        Channels without a ``<type>`` are EEG (the stream's type); unknown types are
        ``misc``. Metadata describing a different number of channels is ignored.
    """
    with h5py.File(session.path, "r", swmr=session.swmr) as h5:
        xml = h5[fmt.STREAMS_GROUP][info.key].attrs.get("info_xml", "")
    xml = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else str(xml)
    try:
        desc = ET.fromstring(xml).find("desc") if xml else None
    except ET.ParseError as exc:
        logger.warning("stream %r: unreadable LSL info XML (%s); defaults used", info.name, exc)
        desc = None
    nodes = desc.findall("channels/channel") if desc is not None else []
    if nodes and len(nodes) != info.channel_count:
        logger.warning(
            "stream %r: LSL metadata describes %d channels, the data has %d; metadata ignored",
            info.name, len(nodes), info.channel_count,
        )  # fmt: skip
        nodes = []
    labels = list(info.channel_labels)
    if len(labels) != info.channel_count:
        labels = [(n.findtext("label") or "").strip() for n in nodes] or [""] * info.channel_count
    labels = _unique([lb or f"E{i + 1}" for i, lb in enumerate(labels)])
    channels = []
    for i, name in enumerate(labels):
        node = nodes[i] if nodes else None
        ltype = (node.findtext("type") or "").strip().upper() if node is not None else ""
        lunit = (node.findtext("unit") or "").strip().lower() if node is not None else ""
        kind = _TYPES.get(ltype, "misc") if ltype else "eeg"  # untyped: the stream is EEG
        unit = _UNITS.get(lunit, "µV" if not lunit and kind != "misc" else "n/a")
        pos = _xyz(node.find("location")) if node is not None else None
        if unit == "n/a" and kind != "misc":
            logger.warning(
                "stream %r channel %r: unit %r is not a voltage; written as n/a",
                info.name, name, lunit,
            )  # fmt: skip
        channels.append(EegChannel(name, kind, unit, pos))
    fids: dict[str, tuple[float, float, float]] = {}
    if desc is not None:
        for f in desc.findall("fiducials/fiducial"):
            key = _FIDUCIALS.get((f.findtext("label") or "").strip().lower())
            xyz = _xyz(f.find("location"))
            if key and xyz:
                fids[key] = xyz

    def text(*paths: str) -> str:
        for p in paths:
            value = (desc.findtext(p) or "").strip() if desc is not None else ""
            if value:
                return value
        return ""

    return EegMeta(
        channels=channels,
        fiducials_mm=fids if len(fids) == 3 else {},
        manufacturer=text("acquisition/manufacturer", "manufacturer"),
        model=text("acquisition/model", "model"),
        serial=text("acquisition/serial_number", "serial_number"),
    )


# -- streaming the samples ---------------------------------------------------------------
def _file_blocks(
    session: Session, info: StreamInfo, timeline: Timeline, rows: int = BLOCK_ROWS
) -> Iterator[np.ndarray]:
    """Yield the file's samples in order, zero pads inserted.

    Yields
    ------
    block : ndarray of float32, shape (n_rows, n_channels)
        At most ``rows`` rows each.
    """
    pads = sorted(timeline.pads)
    p = 0
    n_ch = info.channel_count
    for start, block in session.iter_blocks(info, rows):
        block = np.asarray(block, dtype=np.float32)
        pos = 0
        while p < len(pads) and pads[p][0] < start + block.shape[0]:
            k, n_pad = pads[p]
            cut = max(k - start, 0)
            if cut > pos:
                yield block[pos:cut]
            for z in range(0, n_pad, rows):
                yield np.zeros((min(rows, n_pad - z), n_ch), dtype=np.float32)
            pos = max(pos, cut)
            p += 1
        if pos < block.shape[0]:
            yield block[pos:]


def stream_brainvision(
    session: Session,
    timeline: Timeline,
    folder: Path,
    stem: str,
    meta: EegMeta | None = None,
) -> Path:
    """Write the session's EEG as a BrainVision triplet, block by block.

    Parameters
    ----------
    session : Session
        The open session.
    timeline : Timeline
        Its time line (rate, pads, acquisition time).
    folder : Path
        Output folder (created if missing).
    stem : str
        File name without extension.
    meta : EegMeta | None
        Channel metadata (default: read from the stream's LSL XML).

    Returns
    -------
    vhdr : Path
        The header; ``.vmrk`` and ``.eeg`` lie beside it. The ``.eeg`` is multiplexed
        little-endian float32 in each channel's unit (µV for EEG), resolution 1.0.
    """
    import pybv

    info = eeg_stream(session)
    meta = meta or read_eeg_meta(session, info)
    folder.mkdir(parents=True, exist_ok=True)
    n_ch = len(meta.channels)
    with warnings.catch_warnings():
        # pybv warns for any unit but µV (mV, V, n/a): those are written as asked.
        warnings.filterwarnings("ignore", "Encountered unsupported", UserWarning)
        pybv.write_brainvision(
            data=np.zeros((n_ch, 1)), sfreq=timeline.fs, ch_names=[c.name for c in meta.channels],
            fname_base=stem, folder_out=str(folder), unit=[c.unit for c in meta.channels],
            resolution=1.0, fmt="binary_float32", meas_date=timeline.acq_time, overwrite=True,
        )  # fmt: skip
    n = 0
    with open(folder / f"{stem}.eeg", "wb") as f:  # replaces pybv's 1-sample dummy
        for block in _file_blocks(session, info, timeline):
            np.ascontiguousarray(block, dtype="<f4").tofile(f)  # time-major = MULTIPLEXED
            n += block.shape[0]
    if n != timeline.n_file_samples:  # pragma: no cover - a reader/time-line mismatch
        raise OutputError(
            f"{folder / stem}.eeg: wrote {n} samples, the time line has {timeline.n_file_samples}.",
            hint="The session changed while converting; convert it again.",
        )
    return folder / f"{stem}.vhdr"


# -- EDF -------------------------------------------------------------------------------
def _edf_num(value: float, up: bool) -> str:
    """Format a physical limit in EDF's 8 ASCII characters, rounded outwards."""
    for decimals in range(6, -1, -1):
        scale = 10.0**decimals
        v = (math.ceil(value * scale) if up else math.floor(value * scale)) / scale
        s = f"{v:.{decimals}f}"
        if len(s) <= 8:
            return s
    raise EegFormatError(
        f"an EEG value of {value:g} does not fit EDF's 8-character physical range.",
        hint="Convert with --format BrainVision.",
    )


def _edf_field(value: str, width: int) -> bytes:
    return value.encode("ascii", "replace")[:width].ljust(width)


def stream_edf(
    session: Session, timeline: Timeline, path: Path, meta: EegMeta | None = None
) -> Path:
    """Write the session's EEG as EDF (int16, 1-s data records), block by block.

    A first pass over the samples finds each channel's physical range (zero included
    when the file has pads); the last record is completed with the last sample's
    values (EDF records all have the same length).

    Parameters
    ----------
    session : Session
        The open session.
    timeline : Timeline
        Its time line; the rate must be a whole number of Hz.
    path : Path
        The ``.edf`` file to write.
    meta : EegMeta | None
        Channel metadata (default: read from the stream's LSL XML).

    Returns
    -------
    path : Path

    Raises
    ------
    EegFormatError
        The rate is not a whole number of Hz, or a label is longer than 16 characters.
    """
    info = eeg_stream(session)
    meta = meta or read_eeg_meta(session, info)
    fs = timeline.fs
    if fs != int(fs):
        raise EegFormatError(
            f"stream {info.name!r}: EDF needs a whole number of samples per second, "
            f"the rate is {fs} Hz.",
            hint="Convert with --format BrainVision.",
        )
    spr = int(fs)
    long = [c.name for c in meta.channels if len(c.name) > 16]
    if long:
        raise EegFormatError(
            f"stream {info.name!r}: EDF labels hold 16 characters; too long: {long}.",
            hint="Convert with --format BrainVision.",
        )
    n_ch = len(meta.channels)
    lo = np.full(n_ch, np.inf)
    hi = np.full(n_ch, -np.inf)
    for _, block in session.iter_blocks(info, BLOCK_ROWS):
        b = np.asarray(block, dtype=np.float32)
        lo = np.fmin(lo, np.nanmin(b, axis=0, initial=np.inf))
        hi = np.fmax(hi, np.nanmax(b, axis=0, initial=-np.inf))
    if timeline.pads:
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    lo[~np.isfinite(lo)] = 0.0
    hi[~np.isfinite(hi)] = 0.0
    flat = hi <= lo
    hi[flat] = lo[flat] + 1.0
    pmin = [_edf_num(float(v), up=False) for v in lo]
    pmax = [_edf_num(float(v), up=True) for v in hi]
    p0 = np.array([float(s) for s in pmin])
    p1 = np.array([float(s) for s in pmax])
    dmin, dmax = -32768, 32767
    gain = (dmax - dmin) / (p1 - p0)  # digital steps per unit
    n_records = -(-timeline.n_file_samples // spr)
    acq: datetime = timeline.acq_time
    month = _MONTHS[acq.month - 1]  # EDF+ wants English abbreviations, whatever the locale
    header = b"".join([
        _edf_field("0", 8), _edf_field("X X X X", 80),
        _edf_field(f"Startdate {acq.day:02d}-{month}-{acq.year} X X X", 80),
        _edf_field(acq.strftime("%d.%m.%y"), 8), _edf_field(acq.strftime("%H.%M.%S"), 8),
        _edf_field(str(256 * (n_ch + 1)), 8), _edf_field("", 44),
        _edf_field(str(n_records), 8), _edf_field("1", 8), _edf_field(str(n_ch), 4),
        *(_edf_field(c.name, 16) for c in meta.channels),
        *(_edf_field("", 80) for _ in meta.channels),
        *(_edf_field("uV" if c.unit == "µV" else c.unit, 8) for c in meta.channels),
        *(_edf_field(s, 8) for s in pmin), *(_edf_field(s, 8) for s in pmax),
        *(_edf_field(str(dmin), 8) for _ in meta.channels),
        *(_edf_field(str(dmax), 8) for _ in meta.channels),
        *(_edf_field("", 80) for _ in meta.channels),
        *(_edf_field(str(spr), 8) for _ in meta.channels),
        *(_edf_field("", 32) for _ in meta.channels),
    ])  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    carry = np.zeros((0, n_ch), dtype=np.float32)
    with open(path, "wb") as f:
        f.write(header)

        def emit(x: np.ndarray) -> None:
            for r in range(0, x.shape[0], 10 * spr):  # 10 records at a time: small temporaries
                y = np.nan_to_num(x[r : r + 10 * spr].astype(np.float64), nan=0.0)
                y -= p0
                y *= gain
                y += dmin
                d = np.clip(np.rint(y, out=y), dmin, dmax).astype("<i2")
                # (records, samples, channels) → per record, each channel's samples in a row
                d.reshape(-1, spr, n_ch).transpose(0, 2, 1).tofile(f)

        for block in _file_blocks(session, info, timeline):
            data = np.concatenate([carry, block]) if carry.size else block
            whole = data.shape[0] // spr * spr
            if whole:
                emit(data[:whole])
            carry = data[whole:]
        if carry.shape[0]:
            tail = np.repeat(carry[-1:], spr - carry.shape[0], axis=0)
            emit(np.concatenate([carry, tail]))
    return path


# -- mne-bids ---------------------------------------------------------------------------
def _montage(meta: EegMeta) -> mne.channels.DigMontage | None:
    """Positions (m) of the EEG channels, or None unless every EEG channel has one."""
    import mne

    eeg = [c for c in meta.channels if c.kind == "eeg"]
    if not eeg or any(c.pos_mm is None for c in eeg):
        return None
    ch_pos = {c.name: np.asarray(c.pos_mm) / 1000.0 for c in eeg}
    if meta.fiducials_mm:
        f = {k: np.asarray(v) / 1000.0 for k, v in meta.fiducials_mm.items()}
        return mne.channels.make_dig_montage(ch_pos=ch_pos, coord_frame="unknown", **f)
    r = round(float(np.mean([np.linalg.norm(p) for p in ch_pos.values()])), 4)  # 0.1 mm
    return mne.channels.make_dig_montage(
        ch_pos=ch_pos, nasion=[0.0, r, 0.0], lpa=[-r, 0.0, 0.0], rpa=[r, 0.0, 0.0],
        coord_frame="head",
    )  # fmt: skip


def _coord_description(meta: EegMeta) -> dict[str, Any]:
    source = (
        "Electrode positions from the EEG stream's LSL metadata (channel <location>, "
        "a head-centred frame: x right, y front, z up, in mm), not digitized for this "
        "session."
    )
    if meta.manufacturer == "avlab-sim":
        source += " avlab's simulator publishes idealized positions on a 95-mm sphere."
    if meta.fiducials_mm:
        landmarks = "NAS, LPA and RPA are the fiducials given in the stream's metadata."
    else:
        landmarks = (
            "No anatomical landmarks were measured: NAS, LPA and RPA are assumed where the "
            "+y, -x and +x axes meet a sphere of the electrodes' mean radius, so the "
            "positions satisfy the CapTrak definition (RAS, origin between LPA and RPA) "
            "by construction."
        )
    return {
        "EEGCoordinateSystemDescription": f"{source} {landmarks}",
        "AnatomicalLandmarkCoordinateSystemDescription": landmarks,
        # Fiducials are markers visible in an MR image; none were used.
        "FiducialsDescription": "No fiducial markers were placed.",
        "FiducialsCoordinates": {},
        "FiducialsCoordinateSystem": "CapTrak",
        "FiducialsCoordinateUnits": "m",
        "FiducialsCoordinateSystemDescription": "No fiducial markers were placed.",
    }


def _merge_json(path: Path, entries: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    """Add ``entries`` to a sidecar mne-bids wrote, dropping the keys in ``drop``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in drop:
        data.pop(key, None)
    data.update(entries)
    write_json(path, data)


def _tidy_electrodes(path: Path) -> None:
    """Keep only electrodes with a position, coordinates to the micrometre.

    mne-bids lists every channel, ``n/a`` where the position is unknown (EOG, misc),
    and ``read_raw_bids`` then warns that they are not marked bad.
    """
    cols, rows = read_tsv(path)
    xyz = [cols.index(c) for c in ("x", "y", "z")]
    keep = []
    for row in rows:
        if any(row[i] == "n/a" for i in xyz):
            continue
        keep.append([float(v) if i in xyz else v for i, v in enumerate(row)])
    write_tsv(path, cols, keep)


def _remove_old(root: Path, run: BidsRun, eeg_dir: Path) -> None:
    """Delete the run's EEG data files and their ``scans.tsv`` rows.

    mne-bids preloads the whole recording when asked to overwrite an existing data
    file ("load data before removing its source"), so they go first.
    """
    removed = []
    for ext in _DATA_EXTENSIONS:
        p = eeg_dir / f"{run.stem()}_eeg{ext}"
        if p.is_file():
            p.unlink()
            removed.append(f"eeg/{p.name}")
    scans = run.session_dir(root) / f"sub-{run.subject}_ses-{run.session}_scans.tsv"
    if removed and scans.is_file():
        cols, rows = read_tsv(scans)
        keep = [r for r in rows if r and r[0] not in removed]
        if len(keep) != len(rows):
            write_tsv(scans, cols, keep)


def _sidecar(
    lab: LabInfo, meta: EegMeta, task_description: str, instructions: str
) -> dict[str, Any]:
    def known(value: str, fallback: str) -> str:
        return value if value and value != "n/a" else (fallback or "n/a")

    entries = {
        "Manufacturer": known(lab.amplifier_manufacturer, meta.manufacturer),
        "ManufacturersModelName": known(lab.amplifier_model, meta.model),
        "DeviceSerialNumber": lab.amplifier_serial or meta.serial or None,
        "SubjectArtefactDescription": lab.subject_artefact_description or None,
        "CogAtlasID": lab.cog_atlas_id or None,
        "CogPOID": lab.cog_po_id or None,
        "SoftwareVersions": f"avlab {__version__}",
        "InstitutionName": lab.institution_name,
        "InstitutionAddress": lab.institution_address,
        "InstitutionalDepartmentName": lab.institution_department,
        "EEGReference": lab.eeg_reference,
        "EEGGround": lab.eeg_ground,
        "CapManufacturer": lab.cap_manufacturer,
        "CapManufacturersModelName": lab.cap_model,
        "HardwareFilters": lab.hardware_filters,
        "SoftwareFilters": "n/a",
        "TaskDescription": task_description or None,
        "Instructions": instructions or None,
    }
    return {k: v for k, v in entries.items() if v is not None}


def write_eeg(
    session: Session,
    timeline: Timeline,
    run: BidsRun,
    root: Path,
    *,
    lab: LabInfo,
    fmt: Literal["BrainVision", "EDF"] = "BrainVision",
    daysback: int | None = None,
    task_description: str = "",
    instructions: str = "",
) -> EegOutput:
    """Write a session's EEG into a BIDS dataset, never holding it all in memory.

    Parameters
    ----------
    session : Session
        The open session.
    timeline : Timeline
        Its time line (:meth:`Timeline.from_session`): pads and acquisition time.
    run : BidsRun
        Where the run goes (subject, session, task, run labels).
    root : Path
        The dataset root (created if missing).
    lab : LabInfo
        Line frequency, reference, ground, cap, amplifier and institution.
    fmt : {"BrainVision", "EDF"}
        Data file format.
    daysback : int | None
        Shift every date back by this many days (de-identification); None keeps them.
    task_description, instructions : str
        ``TaskDescription`` and ``Instructions`` of ``eeg.json`` (left out when empty).

    Returns
    -------
    output : EegOutput

    Raises
    ------
    EegFormatError
        ``fmt`` is unknown, or the data cannot be stored as EDF.
    OutputError
        The dataset root cannot be written.
    """
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    if fmt not in ("BrainVision", "EDF"):
        raise EegFormatError(f"unknown EEG format {fmt!r}.", hint="Use BrainVision or EDF.")
    info = eeg_stream(session)
    meta = read_eeg_meta(session, info)
    eeg_dir = run.session_dir(root) / "eeg"
    stage = root / f".avlab-tmp-{uuid.uuid4().hex}"
    try:
        stage.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create {stage}: {exc.strerror or exc}.",
            hint="Check that the BIDS root is writable and the disk has space.",
        ) from exc
    stem = f"{run.stem()}_eeg"
    try:
        if fmt == "EDF":
            src = stream_edf(session, timeline, stage / f"{stem}.edf", meta)
            raw = mne.io.read_raw_edf(src, preload=False, verbose="ERROR")
        else:
            src = stream_brainvision(session, timeline, stage, stem, meta)
            raw = mne.io.read_raw_brainvision(src, preload=False, verbose="ERROR")
        raw.set_channel_types({c.name: c.kind for c in meta.channels}, on_unit_change="ignore")
        montage = _montage(meta)
        if montage is not None:
            raw.set_montage(montage, on_missing="ignore")
        raw.info["line_freq"] = float(lab.line_freq_hz)
        raw.set_meas_date(timeline.acq_time)  # EDF headers hold whole seconds only
        raw.set_annotations(None)  # events.tsv is avlab.bids.events'
        _remove_old(root, run, eeg_dir)
        bids_path = BIDSPath(
            subject=run.subject, session=run.session, task=run.task, run=run.run,
            datatype="eeg", root=root,
        )  # fmt: skip
        with warnings.catch_warnings():
            # events.tsv is written by avlab.bids.events, not from annotations
            warnings.filterwarnings("ignore", "No events found or provided", RuntimeWarning)
            # avlab's dataset_description.json declares a newer BIDS than mne-bids knows
            warnings.filterwarnings("ignore", "Conflicting BIDSVersion", UserWarning)
            write_raw_bids(
                raw, bids_path, overwrite=True, readme=False, verbose="ERROR",
                anonymize=dict(daysback=daysback) if daysback else None,
            )  # fmt: skip
        counts = {"MISCChannelCount": sum(c.kind == "misc" for c in meta.channels)}
        _merge_json(
            bids_path.copy().update(suffix="eeg", extension=".json").fpath,
            _sidecar(lab, meta, task_description, instructions) | counts,
            drop=("MiscChannelCount",),  # mne-bids' spelling; BIDS says MISCChannelCount
        )
        files = sorted(eeg_dir.glob(f"{run.stem()}_eeg.*"))
        files.append(eeg_dir / f"{run.stem()}_channels.tsv")
        if montage is not None:
            prefix = f"sub-{run.subject}_ses-{run.session}_space-CapTrak"
            _tidy_electrodes(eeg_dir / f"{prefix}_electrodes.tsv")
            coord = eeg_dir / f"{prefix}_coordsystem.json"
            _merge_json(coord, _coord_description(meta))
            files += [eeg_dir / f"{prefix}_electrodes.{e}" for e in ("tsv", "json")]
            files.append(coord)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    n = int(raw.n_times)
    for p in files:
        logger.info("wrote %s", p)
    return EegOutput(
        files=[p for p in files if p.is_file()], n_channels=len(meta.channels),
        n_file_samples=n, duration_s=n / timeline.fs, sfreq=timeline.fs,
    )  # fmt: skip
