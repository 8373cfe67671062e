"""Scoring a separator on a folder of mixtures with their reference talkers.

The folder holds ``mixture_<i>.wav``, ``source1_<i>.wav`` and
``source2_<i>.wav`` for any token ``<i>`` (``0001``, ``a``, ...). Every file
is checked before any separation runs. :func:`evaluate_folder` separates each
mixture with any callable ``separate(audio, srate) -> (2, n)`` (a
:class:`~avlab.separate.inference.Separator`'s ``separate``, a baseline, an
oracle), times it, and scores it with
:func:`~avlab.separate.metrics.score_separation`.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.errors import OutputError
from avlab.separate.inference import SeparateError
from avlab.separate.metrics import TalkerScores, score_separation

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["EvalResult", "EvalRow", "MeanScores", "evaluate_folder"]

SCORES_CSV = "scores.csv"
SUMMARY_JSON = "summary.json"
_TALKER_FIELDS = tuple(f for f in TalkerScores.model_fields if f != "estimate")
_N_SRC = 2
_CSV_HEAD = ("id", "talker", "estimate", "srate", "duration_s", "rtf")


class MeanScores(BaseModel):
    """Means over talkers (and files); NaN scores (e.g. PESQ that could not run) are left out."""

    model_config = ConfigDict(extra="forbid")

    si_sdr_db: float
    si_sdri_db: float
    stoi: float
    estoi: float
    pesq: float
    srmr: float
    mix_si_sdr_db: float
    mix_stoi: float
    mix_estoi: float
    mix_pesq: float
    mix_srmr: float
    rtf: float
    """Real-time factor: separation wall time / audio duration."""


class EvalRow(BaseModel):
    """Scores of one mixture file."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """The ``<i>`` of ``mixture_<i>.wav``."""
    mixture: str
    """File name of the mixture."""
    srate: int
    """Hz."""
    duration_s: float
    separation_s: float
    """Wall time of the ``separate`` call, s."""
    rtf: float
    """``separation_s / duration_s``."""
    permutation: tuple[int, ...]
    """Separator output ``permutation[i]`` was scored against ``source<i+1>``."""
    talkers: list[TalkerScores]
    """In the order of ``source1``, ``source2``."""
    mix_srmr: float
    mean: MeanScores
    """Mean over the two talkers."""


class EvalResult(BaseModel):
    """Scores of a folder of mixtures: one row per file and the overall mean."""

    model_config = ConfigDict(extra="forbid")

    mix_dir: str
    rows: list[EvalRow]
    mean: MeanScores
    """Mean over all files and talkers."""

    def write(self, out: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
        """Write ``scores.csv`` (one line per file and talker) and ``summary.json``.

        Parameters
        ----------
        out : Path
            Folder, created if missing.
        overwrite : bool
            Replace existing ``scores.csv`` / ``summary.json``.

        Returns
        -------
        csv_path, json_path : Path

        Raises
        ------
        OutputError
            The folder cannot be created or written, or a file exists and
            ``overwrite`` is False.
        """
        out = Path(out)
        paths = (out / SCORES_CSV, out / SUMMARY_JSON)
        for p in paths:
            if p.exists() and not overwrite:
                raise OutputError(
                    f"{p} already exists.",
                    "pass overwrite=True (--overwrite) or choose another output folder.",
                )
        header = [*_CSV_HEAD, *_TALKER_FIELDS, "mix_srmr"]
        try:
            out.mkdir(parents=True, exist_ok=True)
            with paths[0].open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                for row in self.rows:
                    for k, t in enumerate(row.talkers, start=1):
                        head = (row.id, k, t.estimate, row.srate, row.duration_s, row.rtf)
                        scores = (getattr(t, f) for f in _TALKER_FIELDS)
                        writer.writerow([*head, *scores, row.mix_srmr])
            paths[1].write_text(self.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            raise OutputError(
                f"cannot write the scores to {out}: {exc.strerror or exc}.",
                "choose another output folder.",
            ) from exc
        for p in paths:
            logger.info("wrote %s", p)
        return paths

    def table(self) -> Table:
        """Per-file means and the overall mean as a rich table.

        Returns
        -------
        table : rich.table.Table
        """
        from rich.table import Table

        table = Table(title=f"Separation scores: {self.mix_dir}")
        for name in (
            "file",
            "SI-SDR dB",
            "SI-SDRi dB",
            "STOI",
            "ESTOI",
            "PESQ mix → est",
            "SRMR mix → est",
            "RTF",
        ):
            table.add_column(name, justify="left" if name == "file" else "right")
        for i, (label, m) in enumerate([*((r.id, r.mean) for r in self.rows), ("mean", self.mean)]):
            last = i == len(self.rows)
            table.add_row(
                label,
                _f(m.si_sdr_db, 2),
                _f(m.si_sdri_db, 2),
                _f(m.stoi, 3),
                _f(m.estoi, 3),
                f"{_f(m.mix_pesq, 2)} → {_f(m.pesq, 2)}",
                f"{_f(m.mix_srmr, 2)} → {_f(m.srmr, 2)}",
                _f(m.rtf, 3),
                style="bold" if last else None,
                end_section=i == len(self.rows) - 1,
            )
        return table


def _f(x: float, digits: int) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN if there is none (no warning)."""
    ok = [v for v in values if math.isfinite(v)]
    return float(np.mean(ok)) if ok else float("nan")


def _mean(
    talkers: Sequence[TalkerScores], mix_srmr: Sequence[float], rtf: Sequence[float]
) -> MeanScores:
    fields = {f: _nanmean([getattr(t, f) for t in talkers]) for f in _TALKER_FIELDS}
    return MeanScores(**fields, mix_srmr=_nanmean(mix_srmr), rtf=_nanmean(rtf))


def _info(path: Path) -> tuple[int, int]:
    """Rate (Hz) and length (samples) of a WAV."""
    try:
        info = sf.info(str(path))
        return int(info.samplerate), int(info.frames)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise SeparateError(
            f"{path}: cannot read this WAV ({exc}).",
            "replace it with a readable PCM or float WAV file.",
        ) from exc


def _read(path: Path, frames: int) -> np.ndarray:
    """First ``frames`` samples of channel 0, float64."""
    try:
        data, _ = sf.read(str(path), frames=frames, dtype="float64", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise SeparateError(
            f"{path}: cannot read this WAV ({exc}).",
            "replace it with a readable PCM or float WAV file.",
        ) from exc
    if data.shape[1] > 1:
        logger.info("%s has %d channels; scoring channel 0", path.name, data.shape[1])
    return data[:, 0]


def _discover(mix_dir: Path) -> list[tuple[str, Path, Path, Path, int, int]]:
    """Check the folder; return (id, mixture, source1, source2, srate, n_frames) per mixture."""
    if not mix_dir.is_dir():
        raise SeparateError(
            f"mixture folder {mix_dir} does not exist.",
            "give a folder with mixture_<i>.wav, source1_<i>.wav and source2_<i>.wav files.",
        )
    mixtures = sorted(mix_dir.glob("mixture_*.wav"))
    if not mixtures:
        raise SeparateError(
            f"{mix_dir} holds no mixture_*.wav file.",
            "name the mixtures mixture_<i>.wav, with their talkers "
            "source1_<i>.wav and source2_<i>.wav.",
        )
    items = []
    for mix in mixtures:
        token = mix.stem[len("mixture_") :]
        sources = [mix_dir / f"source{k}_{token}.wav" for k in (1, 2)]
        for s in sources:
            if not s.is_file():
                raise SeparateError(
                    f"{mix} has no reference {s.name} in {mix_dir}.",
                    f"add {s.name}, or move {mix.name} out of the folder.",
                )
        files = (mix, *sources)
        infos = [_info(p) for p in files]
        rates = {r for r, _ in infos}
        if len(rates) > 1:
            listed = ", ".join(f"{p.name} {r} Hz" for p, (r, _) in zip(files, infos, strict=True))
            raise SeparateError(
                f"{mix}: sampling rates differ between the mixture and its sources ({listed}).",
                "resample the sources to the mixture's rate.",
            )
        lengths = [k for _, k in infos]
        if max(lengths) - min(lengths) > 1:
            listed = ", ".join(f"{p.name} {k} samples" for p, k in zip(files, lengths, strict=True))
            raise SeparateError(
                f"{mix}: lengths differ between the mixture and its sources ({listed}).",
                "trim the mixture and both sources to the same number of samples.",
            )
        if min(lengths) == 0:
            raise SeparateError(
                f"{mix}: the mixture or a source is empty.",
                "remove this mixture or write its audio again.",
            )
        items.append((token, mix, sources[0], sources[1], rates.pop(), min(lengths)))
    return items


def _check_output(y: object, n: int, mix: Path) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != _N_SRC:
        raise SeparateError(
            f"{mix}: the separator returned shape {arr.shape}, not (2, n).",
            "the separate callable must return the two talkers as rows.",
        )
    if not np.all(np.isfinite(arr)):
        raise SeparateError(
            f"{mix}: the separator returned NaN or infinite samples.",
            "check the separation model on this file.",
        )
    if arr.shape[1] != n:
        logger.warning(
            "%s: the separator returned %d samples for %d; trimmed or zero-padded",
            mix.name,
            arr.shape[1],
            n,
        )
        arr = np.pad(arr[:, :n], ((0, 0), (0, max(0, n - arr.shape[1]))))
    return arr


def evaluate_folder(
    mix_dir: Path,
    separate: Callable[[np.ndarray, int], np.ndarray],
    *,
    out: Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> EvalResult:
    """Separate and score every mixture of a folder.

    Parameters
    ----------
    mix_dir : Path
        Folder with ``mixture_<i>.wav``, ``source1_<i>.wav``, ``source2_<i>.wav``
        (same rate; lengths may differ by one sample, then trimmed). Of a
        multi-channel file only channel 0 is used.
    separate : callable
        ``separate(audio (n,), srate) -> (2, n)`` in any talker order, e.g.
        ``Separator("causal").separate``.
    out : Path or None
        Where to write ``scores.csv`` and ``summary.json``; None writes nothing.
    progress : bool
        Show a progress bar on stderr.
    overwrite : bool
        Replace existing result files in ``out``.

    Returns
    -------
    result : EvalResult

    Raises
    ------
    SeparateError
        Folder missing or without ``mixture_*.wav``, a source missing,
        unreadable WAV, rates or lengths that differ, or a separator output of
        the wrong shape; the message names the file.
    OutputError
        ``out`` cannot be written, or holds results and ``overwrite`` is False.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    mix_dir = Path(mix_dir)
    items = _discover(mix_dir)  # fails before any separation
    if out is not None:
        for name in (SCORES_CSV, SUMMARY_JSON):
            if (Path(out) / name).exists() and not overwrite:
                raise OutputError(
                    f"{Path(out) / name} already exists.",
                    "pass overwrite=True (--overwrite) or choose another output folder.",
                )
    rows: list[EvalRow] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("separating", total=len(items))
        for token, mix_path, s1, s2, srate, n in items:
            bar.update(task, description=f"separating {mix_path.name}")
            mix = _read(mix_path, n)
            refs = np.stack([_read(s1, n), _read(s2, n)])
            for src, r in zip((s1, s2), refs, strict=True):
                if not np.any(r):
                    raise SeparateError(
                        f"{src} is silent: SI-SDR needs a reference signal.",
                        "check the file, or leave this mixture out.",
                    )
            start = time.perf_counter()
            est = separate(mix, srate)
            elapsed = time.perf_counter() - start
            est = _check_output(est, n, mix_path)
            scores = score_separation(est, refs, mix, srate)
            duration = n / srate
            rtf = elapsed / duration
            rows.append(
                EvalRow(
                    id=token,
                    mixture=mix_path.name,
                    srate=srate,
                    duration_s=duration,
                    separation_s=elapsed,
                    rtf=rtf,
                    permutation=scores.permutation,
                    talkers=scores.talkers,
                    mix_srmr=scores.mix_srmr,
                    mean=_mean(scores.talkers, [scores.mix_srmr], [rtf]),
                )
            )
            logger.info(
                "%s: SI-SDRi %.2f dB, RTF %.3f", mix_path.name, rows[-1].mean.si_sdri_db, rtf
            )
            bar.advance(task)
    result = EvalResult(
        mix_dir=str(mix_dir),
        rows=rows,
        mean=_mean(
            [t for r in rows for t in r.talkers], [r.mix_srmr for r in rows], [r.rtf for r in rows]
        ),
    )
    if out is not None:
        result.write(Path(out), overwrite=overwrite)
    return result
