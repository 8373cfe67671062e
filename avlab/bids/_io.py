"""Deterministic file writing for BIDS output: same input, same bytes.

Gzip headers carry no time or file name, JSON keeps the key order it is given, TSV
cells use ``n/a`` for missing values. Files are written to a temporary name in the
same folder and renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from avlab.errors import OutputError

__all__ = [
    "atomic_write_bytes",
    "cell",
    "read_tsv",
    "sha256_file",
    "staged",
    "write_json",
    "write_tsv",
    "write_tsv_gz",
]


@contextmanager
def staged(path: Path, source: Path | None = None) -> Iterator[Path]:
    """Write through ``.<name>.tmp`` beside ``path``, renamed into place on success.

    Parameters
    ----------
    path : Path
        The file to write.
    source : Path | None
        For copies: named in the error message.

    Yields
    ------
    tmp : Path
        Where to write.

    Raises
    ------
    OutputError
        The folder cannot be written (read-only, full disk); the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        what = f"copy {source.name} to" if source is not None else "write"
        raise OutputError(
            f"cannot {what} {path}: {exc.strerror or exc}.",
            hint="Check that the BIDS root is writable and the disk has space.",
        ) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A file that already holds exactly ``data`` is left untouched, so re-running a
    conversion changes no modification time.

    Raises
    ------
    OutputError
        The folder cannot be written (read-only, full disk).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return  # unchanged: keep the file (and its modification time) as it is
    except OSError:
        pass
    with staged(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON with 2-space indent, keys in the given order, UTF-8, final newline."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def cell(value: Any, fmt: str = "%.6f") -> str:
    """Format one TSV cell: ``n/a`` for None/NaN/empty, floats with ``fmt``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else fmt % value
    text = str(value)
    if text == "":
        return "n/a"
    return text.replace("\t", " ").replace("\n", " ")


def _tsv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]], header: bool) -> str:
    lines = ["\t".join(columns)] if header else []
    lines += ["\t".join(cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def write_tsv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a TSV with a header line (``events.tsv``, ``participants.tsv``)."""
    atomic_write_bytes(path, _tsv_text(columns, rows, header=True).encode("utf-8"))


def write_tsv_gz(
    path: Path, blocks: Iterable[np.ndarray], fmts: Sequence[str], *, level: int = 1
) -> int:
    """Write a headerless, deterministic ``.tsv.gz`` from numeric blocks.

    Parameters
    ----------
    path : Path
        Output file (``…_physio.tsv.gz``).
    blocks : iterable of ndarray, shape (n_rows, n_columns)
        Rows in order; NaN is written as ``n/a``.
    fmts : sequence of str
        One ``%`` format per column.
    level : int
        Gzip compression level.

    Returns
    -------
    n_rows : int
    """
    fmt = "\t".join(fmts)
    n = 0
    with (
        staged(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=level) as gz,
    ):
        for block in blocks:
            buf = io.StringIO()
            np.savetxt(buf, block, fmt=fmt, delimiter="\t")
            gz.write(buf.getvalue().replace("nan", "n/a").encode("ascii"))
            n += len(block)
    return n


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Read a TSV with a header: (columns, rows of strings)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return [], []
    cols = lines[0].split("\t")
    return cols, [ln.split("\t") for ln in lines[1:] if ln.strip()]


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Return the SHA-256 of a file (hex), read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
