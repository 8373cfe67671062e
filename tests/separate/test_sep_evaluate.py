"""evaluate_folder on a folder of real two-talker mixtures, with oracle and trivial separators.

The folder: spk1_sntK + spk2_sntK (K = 1, 2, 3), trimmed to the shorter talker
(1.76-2.01 s), 16 kHz float WAV. mixture_0002 is stereo (channel 1 is noise,
channel 0 is used) and its source2 is one sample longer (trimmed).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from rich.console import Console

from avlab.errors import OutputError
from avlab.separate.evaluate import EvalResult, evaluate_folder
from avlab.separate.inference import SeparateError, Separator
from avlab.separate.metrics import si_sdr

SPEECH = Path(__file__).resolve().parents[3] / "shared" / "data" / "speech"
SR = 16000
IDS = ("0001", "0002", "0003")


def _talkers(k: int) -> tuple[np.ndarray, np.ndarray]:
    a, _ = sf.read(SPEECH / f"spk1_snt{k}.wav", dtype="float64")
    b, _ = sf.read(SPEECH / f"spk2_snt{k}.wav", dtype="float64")
    n = min(a.size, b.size)
    return a[:n], b[:n]


def _write_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, token in enumerate(IDS, start=1):
        s1, s2 = _talkers(k)
        mix = s1 + s2
        if token == "0002":
            mix = np.stack([mix, 0.1 * rng.standard_normal(mix.size)], axis=1)
            s2 = np.append(s2, 0.0)
        sf.write(folder / f"mixture_{token}.wav", mix, SR, subtype="FLOAT")
        sf.write(folder / f"source1_{token}.wav", s1, SR, subtype="FLOAT")
        sf.write(folder / f"source2_{token}.wav", s2, SR, subtype="FLOAT")


class Oracle:
    """Returns the true talkers, swapped: (source2, source1)."""

    def __init__(self, folder: Path) -> None:
        self.table = []
        for token in IDS:
            mix, _ = sf.read(folder / f"mixture_{token}.wav", dtype="float64", always_2d=True)
            s1, _ = sf.read(folder / f"source1_{token}.wav", dtype="float64")
            s2, _ = sf.read(folder / f"source2_{token}.wav", dtype="float64")
            n = min(mix.shape[0], s1.size, s2.size)
            self.table.append((mix[:n, 0], np.stack([s2[:n], s1[:n]])))

    def __call__(self, audio: np.ndarray, srate: int) -> np.ndarray:
        assert srate == SR and audio.ndim == 1
        for mix, talkers in self.table:
            if mix.size == audio.size and np.array_equal(mix, audio):
                return talkers
        raise AssertionError("the oracle got a mixture it does not know")


def _mixture_twice(audio: np.ndarray, srate: int) -> np.ndarray:
    return np.stack([audio, audio])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mixes")
    _write_folder(path)
    return path


@pytest.fixture(scope="module")
def oracle_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("out") / "scores"


@pytest.fixture(scope="module")
def oracle_result(folder: Path, oracle_out: Path) -> EvalResult:
    return evaluate_folder(folder, Oracle(folder), out=oracle_out, progress=True)


def test_oracle_is_exact_and_permutation_found(oracle_result: EvalResult, folder: Path):
    assert [r.id for r in oracle_result.rows] == list(IDS)
    for row, k in zip(oracle_result.rows, (1, 2, 3), strict=True):
        s1, s2 = _talkers(k)
        assert row.mixture == f"mixture_{row.id}.wav"
        assert row.srate == SR and row.duration_s == pytest.approx(s1.size / SR)
        assert row.permutation == (1, 0)
        assert [t.estimate for t in row.talkers] == [1, 0]
        for t, s in zip(row.talkers, (s1, s2), strict=True):
            # estimate == reference exactly: SI-SDR clipped to 100 dB, not inf
            assert t.si_sdr_db == 100.0
            mix_sdr = si_sdr(s1 + s2, s)
            assert t.mix_si_sdr_db == pytest.approx(mix_sdr, abs=1e-4)  # float32 WAV
            assert t.si_sdri_db == pytest.approx(100.0 - mix_sdr, abs=1e-4)
            assert t.stoi == pytest.approx(1.0, abs=1e-6)
            assert t.estoi == pytest.approx(1.0, abs=1e-6)
            assert t.pesq > 4.4
            assert t.mix_pesq < t.pesq and t.mix_stoi < 1.0
            assert 2.0 < t.srmr < 20.0 and t.srmr > row.mix_srmr
        assert row.mean.si_sdri_db == pytest.approx(
            np.mean([t.si_sdri_db for t in row.talkers]), abs=1e-12
        )
        assert row.rtf == pytest.approx(row.separation_s / row.duration_s)
        assert 0 <= row.rtf < 1.0
    m = oracle_result.mean
    assert m.si_sdr_db == 100.0
    all_sdri = [t.si_sdri_db for r in oracle_result.rows for t in r.talkers]
    assert m.si_sdri_db == pytest.approx(np.mean(all_sdri), abs=1e-12)
    assert m.mix_srmr == pytest.approx(np.mean([r.mix_srmr for r in oracle_result.rows]))


def test_stereo_mixture_uses_channel_0(folder: Path, caplog):
    with caplog.at_level(logging.INFO, logger="avlab"):
        res = evaluate_folder(folder, _mixture_twice, out=None, progress=False)
    assert "mixture_0002.wav has 2 channels; scoring channel 0" in caplog.text
    # mixture twice: no improvement, exactly
    for row in res.rows:
        for t in row.talkers:
            assert t.si_sdri_db == pytest.approx(0.0, abs=1e-6)
            assert t.si_sdr_db == pytest.approx(t.mix_si_sdr_db, abs=1e-12)
            assert t.pesq == pytest.approx(t.mix_pesq, abs=1e-9)
            assert t.srmr == pytest.approx(row.mix_srmr, rel=1e-12)
    assert res.mean.si_sdri_db == pytest.approx(0.0, abs=1e-6)
    # 0002's second talker file is one sample longer: trimmed to the mixture
    assert res.rows[1].duration_s == pytest.approx(_talkers(2)[0].size / SR)


def test_written_csv_and_json(oracle_result: EvalResult, tmp_path: Path):
    csv_path, json_path = oracle_result.write(tmp_path / "res")
    with csv_path.open() as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == 6
    assert [(r["id"], r["talker"]) for r in lines] == [(i, k) for i in IDS for k in ("1", "2")]
    for line in lines:
        row = next(r for r in oracle_result.rows if r.id == line["id"])
        t = row.talkers[int(line["talker"]) - 1]
        assert float(line["si_sdri_db"]) == pytest.approx(t.si_sdri_db, abs=1e-9)
        assert float(line["pesq"]) == pytest.approx(t.pesq, abs=1e-9)
        assert float(line["mix_srmr"]) == pytest.approx(row.mix_srmr, abs=1e-9)
        assert int(line["estimate"]) == t.estimate
    summary = json.loads(json_path.read_text())
    assert len(summary["rows"]) == 3
    assert summary["mean"]["si_sdri_db"] == pytest.approx(oracle_result.mean.si_sdri_db)
    assert EvalResult.model_validate(summary) == oracle_result
    with pytest.raises(OutputError, match=r"scores\.csv already exists"):
        oracle_result.write(tmp_path / "res")
    oracle_result.write(tmp_path / "res", overwrite=True)


def test_out_written_by_evaluate_folder(oracle_result: EvalResult, oracle_out: Path):
    summary = json.loads((oracle_out / "summary.json").read_text())
    assert EvalResult.model_validate(summary) == oracle_result
    with (oracle_out / "scores.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 6


def test_table(oracle_result: EvalResult):
    table = oracle_result.table()
    console = Console(record=True, width=160)
    console.print(table)
    text = console.export_text()
    for token in IDS:
        assert token in text
    assert "mean" in text and "100.00" in text and "SRMR mix → est" in text


def test_evaluate_folder_refuses_to_overwrite(folder: Path, tmp_path: Path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(OutputError, match=r"summary\.json already exists"):
        evaluate_folder(folder, _mixture_twice, out=tmp_path, progress=False)


def test_nan_pesq_is_null_in_json_and_skipped_in_means(tmp_path: Path):
    # 0.2 s mixtures: PESQ needs 0.25 s and STOI ~0.4 s, so both are NaN (null in JSON)
    s1, s2 = (x[4000:7200] for x in _talkers(1))
    sf.write(tmp_path / "mixture_a.wav", s1 + s2, SR, subtype="FLOAT")
    sf.write(tmp_path / "source1_a.wav", s1, SR, subtype="FLOAT")
    sf.write(tmp_path / "source2_a.wav", s2, SR, subtype="FLOAT")
    res = evaluate_folder(tmp_path, _mixture_twice, out=tmp_path / "out", progress=False)
    t = res.rows[0].talkers[0]
    assert math.isnan(t.pesq) and math.isnan(t.stoi) and math.isnan(res.mean.pesq)
    assert t.si_sdri_db == 0.0 and math.isfinite(res.mean.srmr)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mean"]["pesq"] is None and summary["rows"][0]["talkers"][0]["stoi"] is None
    with (tmp_path / "out" / "scores.csv").open() as fh:
        assert math.isnan(float(next(csv.DictReader(fh))["pesq"]))
    console = Console(record=True, width=160)
    console.print(res.table())
    assert "n/a → n/a" in console.export_text()  # PESQ mix → est


def test_shipped_separator_runs_on_a_mixture(folder: Path, tmp_path: Path):
    # placeholder weights: only the plumbing is checked, not the separation quality
    for name in ("mixture_0001", "source1_0001", "source2_0001"):
        (tmp_path / f"{name}.wav").write_bytes((folder / f"{name}.wav").read_bytes())
    torch.set_num_threads(1)
    sep = Separator("causal", threads=1)
    res = evaluate_folder(tmp_path, sep.separate, out=None, progress=False)
    assert len(res.rows) == 1
    for row in res.rows:
        assert sorted(row.permutation) == [0, 1]
        assert all(math.isfinite(t.si_sdr_db) and math.isfinite(t.stoi) for t in row.talkers)
        assert 0 < row.rtf < 5.0


# --- errors --------------------------------------------------------------------


def _small_folder(path: Path, n: int = 8000) -> Path:
    rng = np.random.default_rng(1)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("mixture_0001", "source1_0001", "source2_0001"):
        sf.write(path / f"{name}.wav", 0.1 * rng.standard_normal(n), SR)
    return path


def test_error_folder_missing(tmp_path: Path):
    with pytest.raises(SeparateError, match=r"nope does not exist") as err:
        evaluate_folder(tmp_path / "nope", _mixture_twice, progress=False)
    assert err.value.exit_code == 17


def test_error_no_mixtures(tmp_path: Path):
    sf.write(tmp_path / "source1_0001.wav", np.zeros(100), SR)
    with pytest.raises(SeparateError, match=r"holds no mixture_\*\.wav") as err:
        evaluate_folder(tmp_path, _mixture_twice, progress=False)
    assert "mixture_<i>.wav" in err.value.hint


def test_error_missing_source(tmp_path: Path):
    folder = _small_folder(tmp_path / "m")
    (folder / "source2_0001.wav").unlink()
    with pytest.raises(SeparateError, match=r"mixture_0001\.wav has no reference source2_0001"):
        evaluate_folder(folder, _mixture_twice, progress=False)


def test_error_rates_differ(tmp_path: Path):
    folder = _small_folder(tmp_path / "m")
    sf.write(folder / "source1_0001.wav", np.zeros(8000), 8000)
    with pytest.raises(
        SeparateError, match=r"mixture_0001\.wav: sampling rates differ.*source1_0001\.wav 8000 Hz"
    ):
        evaluate_folder(folder, _mixture_twice, progress=False)


def test_error_lengths_differ(tmp_path: Path):
    folder = _small_folder(tmp_path / "m")
    sf.write(folder / "source2_0001.wav", np.zeros(8002), SR)
    with pytest.raises(SeparateError, match=r"lengths differ.*source2_0001\.wav 8002 samples"):
        evaluate_folder(folder, _mixture_twice, progress=False)


def test_error_corrupt_wav(tmp_path: Path):
    folder = _small_folder(tmp_path / "m")
    (folder / "source1_0001.wav").write_bytes(b"RIFF\x00\x00garbage, not a wave file")
    with pytest.raises(SeparateError, match=r"source1_0001\.wav: cannot read this WAV"):
        evaluate_folder(folder, _mixture_twice, progress=False)


def test_error_separator_output_shape(tmp_path: Path):
    folder = _small_folder(tmp_path / "m")
    with pytest.raises(SeparateError, match=r"mixture_0001\.wav: the separator returned shape"):
        evaluate_folder(folder, lambda x, sr: x[None], progress=False)
