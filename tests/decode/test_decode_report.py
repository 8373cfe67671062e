from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from _evalsynth import LstsqDecoder, MemoryDecoder, make_trials
from rich.console import Console

from avlab.decode.cv import evaluate
from avlab.decode.report import DecodeSummary, print_summary, summarize, write_results
from avlab.errors import OutputError


@pytest.fixture(scope="module")
def results():
    trials = make_trials(n_subjects=3, n_trials=6, duration_s=30, noise=4.0, seed=5)
    for t in trials[:2]:
        t.subject = "<b>&"  # hostile label: must be escaped everywhere
    lin = evaluate(trials, LstsqDecoder(), method="lsq", windows=(1, 2, 5, 10, 30), null_shuffles=2)
    mem = evaluate(trials, MemoryDecoder(), method="mem", windows=(1, 2, 5, 10, 30))
    return lin, mem


def test_summary_numbers(results):
    lin, mem = results
    s = summarize([lin, mem], config={"seed": 0, "windows": (1, 2)})
    m = s.methods[0]
    assert [w.window_s for w in m.windows] == [1, 2, 5, 10, 30]
    w10 = next(w for w in m.windows if w.window_s == 10)
    real10 = lin.real[lin.real["window_s"] == 10]
    assert w10.n == len(real10) == 18 * 3 and w10.accuracy == real10["correct"].mean()
    assert w10.ci_low < w10.accuracy <= w10.ci_high
    assert len(m.subjects) == 4 * 5 and set(m.mesd) == {"01", "02", "03", "<b>&"}  # noqa: E501
    assert m.mesd_median_s is not None and m.mesd_median_s > 0
    null_all = m.null[-1]
    assert null_all.window_s is None and null_all.n == len(lin.null) and null_all.n_reps == 2
    # > 1000 windows: in the band is "at chance"; outside it but within 1.96 cluster-robust
    # SE of 0.5 (36 trial x shuffle clusters here) is inconclusive, not a failure
    in_band = 0.48 <= null_all.accuracy <= 0.52
    near = abs(null_all.accuracy - 0.5) <= 1.96 * null_all.cluster_se
    assert null_all.n_clusters == 36 and null_all.cluster_se > 0
    assert null_all.at_chance is (True if in_band else None if near else False)
    assert s.methods[1].windows[0].accuracy == 0.0 and s.methods[1].null == []
    assert {c.window_s for c in s.comparisons} == {1, 2, 5, 10, 30}
    assert s.config == {"seed": 0, "windows": [1, 2]}
    assert s.versions["numpy"] and s.versions["avlab"]


def test_write_results_files(tmp_path, results):
    from matplotlib.figure import Figure

    extra = Figure()
    extra.add_subplot().plot([0, 1], [1, 0])
    paths = write_results(
        list(results), tmp_path, config={"note": "<script>"}, figures={"trf": extra}
    )
    assert sorted(p.name for p in paths.figures) == [
        "accuracy_vs_window.svg",
        "null.svg",
        "subjects.svg",
        "trf.svg",
    ]
    for p in paths.figures:
        ET.parse(p)  # well-formed SVG
    summary = json.loads(paths.summary_json.read_text())
    assert DecodeSummary.model_validate(summary).methods[0].method == "lsq"  # round trip
    assert [m["method"] for m in summary["methods"]] == ["lsq", "mem"]
    csv = paths.windows_csv.read_text().splitlines()
    assert csv[0].startswith("method,null_rep,fold,subject")
    assert len(csv) == 1 + len(results[0].windows) + len(results[1].windows)
    page = paths.html.read_text()
    assert page.count("<svg") == 4 and "<?xml" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>&" not in page and "sub-&lt;b&gt;&amp;" in page
    assert "trial bootstrap" in page and "Null control" in page
    assert not re.search(r"<script|src=\"http", page)
    with pytest.raises(OutputError, match='summary.json" already exists'):
        write_results(results[0], tmp_path)
    # deterministic output apart from the creation time
    before = (tmp_path / "figures" / "accuracy_vs_window.svg").read_bytes()
    write_results(list(results), tmp_path, overwrite=True, figures={"trf": extra})
    assert (tmp_path / "figures" / "accuracy_vs_window.svg").read_bytes() == before


def test_print_summary(results):
    console = Console(record=True, width=120)
    print_summary(summarize(results[0]), console)
    text = console.export_text()
    assert "lsq (loto, 4 subjects, 18 trials)" in text
    assert "Null control:" in text and "MESD: median over subjects" in text


def test_applied_model_summary(tmp_path):
    from avlab.decode.cv import score_trials

    trials = make_trials(n_subjects=2, n_trials=3, duration_s=20, noise=2.0, seed=9)
    dec = LstsqDecoder().fit([t.eeg for t in trials], [t.envelopes[0] for t in trials])
    res = score_trials(dec, trials, method="saved", windows=(2, 10))
    paths = write_results(res, tmp_path)
    s = DecodeSummary.model_validate_json(paths.summary_json.read_text())
    assert s.methods[0].cv == "applied" and s.methods[0].null == []
    assert any("applied without refitting" in c for c in s.caveats)
    assert [p.name for p in paths.figures] == ["accuracy_vs_window.svg", "subjects.svg"]
