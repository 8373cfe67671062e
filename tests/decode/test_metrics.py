from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from avlab.decode import metrics as M


def _chain_hitting_times(p: float, k: int) -> np.ndarray:
    """Direct linear solve of the absorbing chain 1..k (up p, down 1-p, 1 reflects)."""
    a = np.zeros((k - 1, k - 1))
    for s in range(1, k):
        a[s - 1, s - 1] += 1
        if s + 1 < k:
            a[s - 1, s] -= p
        a[s - 1, max(s - 1, 1) - 1] -= 1 - p
    return np.linalg.solve(a, np.ones(k - 1))


@pytest.mark.parametrize("p", [0.55, 0.6, 0.75, 0.9, 0.99])
def test_hitting_times_closed_form_equals_linear_solve(p):
    n = M.n_states(p)
    k = int(np.ceil(0.65 * (n - 1) + 1))
    direct = _chain_hitting_times(p, k)
    closed = M.hitting_times(p, k)
    assert np.max(np.abs(closed - direct) / direct) < 1e-12
    if p in (0.6, 0.75, 0.9):
        assert np.max(np.abs(closed - direct)) < 4e-15 * max(1.0, direct.max())


def test_esd_values_and_monotone_in_p():
    # design note §4 [run]: ESD(τ = 1 s) = 17.2, 4.5, 3.5 s
    assert M.esd(1.0, 0.6)[0] == pytest.approx(17.238, abs=1e-3)
    assert M.esd(1.0, 0.75)[0] == pytest.approx(4.490, abs=1e-3)
    assert M.esd(1.0, 0.9)[0] == pytest.approx(3.458, abs=1e-3)
    assert M.esd(2.0, 0.75)[0] == pytest.approx(2 * 4.490, abs=2e-3)
    ps = np.linspace(0.52, 0.999, 200)
    vals = np.array([M.esd(1.0, p)[0] for p in ps])
    assert np.all(np.diff(vals) <= 1e-12)
    assert M.esd(1.0, 1.0)[0] == pytest.approx(3.0, abs=1e-6)  # 3 sure steps to k_c = 4
    assert M.esd(1.0, 0.5)[0] == np.inf


def test_mesd_example_curve():
    res = M.mesd([1, 2, 5, 10, 20, 30], [0.60, 0.65, 0.74, 0.82, 0.89, 0.92])
    assert res.mesd_s == pytest.approx(13.14, abs=0.01)  # design note: 13.1 s
    assert res.tau_s == pytest.approx(1.46, abs=0.01)
    assert res.warning is None and res.n_states == 7


def test_mesd_edge_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="avlab"):
        res = M.mesd([1, 2, 5, 10], [0.98, 0.99, 1.0, 1.0], label="sub-01 linear")
    assert "shortest window length (1 s)" in res.warning
    assert "sub-01 linear: MESD optimum at the shortest" in caplog.text
    res = M.mesd([1, 2, 5, 10, 20, 30], [0.5, 0.51, 0.52, 0.53, 0.54, 0.7])
    assert "longest window length (30 s)" in res.warning
    res = M.mesd([1, 5, 10], [0.4, 0.5, 0.45])
    assert res.mesd_s is None and "no window length above chance" in res.warning
    res = M.mesd([1, 5, 10], [0.4, 0.8, 0.45])
    assert res.tau_s == 5 and "only one window length" in res.warning


def test_wilson_ci_binomial_p_and_chance_threshold():
    p, lo, hi = M.binomial_stats(60, 100)
    assert (lo, hi) == pytest.approx((0.5020, 0.6906), abs=1e-4)
    assert p == pytest.approx(0.028444, abs=1e-6)
    p, lo, hi = M.binomial_stats(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert p == pytest.approx(56 / 1024, abs=1e-12)
    assert M.chance_threshold(100) == 0.59
    assert M.chance_threshold(10) == 0.9
    assert M.chance_threshold(4) is None
    assert M.chance_threshold(0) is None


def _windows(correct_per_trial: list[list[bool]], method: str = "m", window_s: float = 5.0):
    rows = []
    for t, cs in enumerate(correct_per_trial):
        for j, c in enumerate(cs):
            rows.append(
                dict(
                    method=method,
                    null_rep=-1,
                    subject="01" if t % 2 else "02",
                    session="",
                    run="01",
                    trial=t,
                    segment=0,
                    window_s=window_s,
                    start_s=5.0 * j,
                    score=1.0 if c else -1.0,
                    correct=c,
                )
            )
    return pd.DataFrame(rows)


def test_accuracy_stats_and_trial_bootstrap_is_wider():
    # 20 trials × 10 windows; whole trials right or wrong (strong clustering), 14/20 right
    df = _windows([[t < 14] * 10 for t in range(20)])
    (st,) = M.accuracy_stats(df, seed=1)
    assert (st.n, st.n_correct, st.n_trials, st.accuracy) == (200, 140, 20, 0.7)
    assert st.chance_threshold == M.chance_threshold(200)
    assert st.boot_high - st.boot_low > 1.5 * (st.ci_high - st.ci_low)
    assert st.boot_low == pytest.approx(0.5, abs=0.06) and st.boot_high == pytest.approx(
        0.9, abs=0.06
    )
    again = M.accuracy_stats(df, seed=1)[0]
    assert (again.boot_low, again.boot_high) == (st.boot_low, st.boot_high)
    per = M.accuracy_stats(df, per_subject=True)
    assert [(s.subject, s.n_correct) for s in per] == [("01", 70), ("02", 70)]


def test_bootstrap_ci_independent_windows_close_to_wilson():
    rng = np.random.default_rng(0)
    k = rng.binomial(1, 0.7, 400)
    lo, hi = M.bootstrap_ci(k, np.ones(400), n_boot=4000, seed=0)
    _, wlo, whi = M.binomial_stats(int(k.sum()), 400)
    assert lo == pytest.approx(wlo, abs=0.01) and hi == pytest.approx(whi, abs=0.01)
    assert M.bootstrap_ci(np.array([3]), np.array([4])) is None


def test_compare_methods_mcnemar():
    a = _windows([[True] * 10 for _ in range(4)], method="a")
    b_correct = [[True] * 10, [True] * 10, [False] * 10, [True, False] * 5]
    b = _windows(b_correct, method="b")
    b.loc[b.index[0], "correct"] = True
    (c,) = M.compare_methods(pd.concat([a, b]), "a", "b")
    assert (c.n, c.a_only, c.b_only) == (40, 15, 0)
    assert c.accuracy_a == 1.0 and c.accuracy_b == 25 / 40
    assert c.p_value == pytest.approx(2 * 0.5**15)
    (same,) = M.compare_methods(pd.concat([a, a.assign(method="c")]), "a", "c")
    assert same.p_value == 1.0
