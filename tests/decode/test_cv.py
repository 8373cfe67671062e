from __future__ import annotations

import numpy as np
import pytest
from _evalsynth import LstsqDecoder, MemoryDecoder, make_trials

from avlab.decode.base import DecodeError, Trial
from avlab.decode.cv import evaluate, make_folds, null_flips, trial_key


def _segment(t: Trial, segment: int) -> Trial:
    half = t.n_times // 2
    sl = slice(0, half) if segment == 0 else slice(half, None)
    return Trial(
        eeg=t.eeg[:, sl],
        envelopes=t.envelopes[:, sl],
        sfreq=t.sfreq,
        subject=t.subject,
        trial=t.trial,
        group=t.group,
        ch_names=t.ch_names,
        run=t.run,
        segment=segment,
    )


def test_loto_units_keep_segments_and_shared_stimuli_together():
    trials = make_trials(n_subjects=2, n_trials=6, duration_s=10, shared_groups=True)
    # split trial 1 of each subject into two segments
    trials = [
        s for t in trials for s in ((_segment(t, 0), _segment(t, 1)) if t.trial == 1 else (t,))
    ]
    folds = make_folds(trials, "loto")
    assert len(folds) == 6  # 3 stimulus pairs × 2 subjects
    for f in folds:
        assert {trials[i].subject for i in (*f.train, *f.test)} == {f.subject}
        test_groups = {trials[i].group for i in f.test}
        assert len(test_groups) == 1
        assert not test_groups & {trials[i].group for i in f.train}
        assert not {trial_key(trials[i]) for i in f.test} & {trial_key(trials[i]) for i in f.train}
    # the segments of trial 1 and trial 2 (same stimuli) are one unit
    f0 = next(f for f in folds if 0 in f.test)
    assert sorted(trials[i].trial for i in f0.test) == [1, 1, 2]


def test_loso_folds_and_errors():
    trials = make_trials(n_subjects=3, n_trials=2, duration_s=5)
    folds = make_folds(trials, "loso")
    assert [f.name for f in folds] == ["sub-01", "sub-02", "sub-03"]
    for f in folds:
        assert {trials[i].subject for i in f.test} == {f.subject}
        assert f.subject not in {trials[i].subject for i in f.train}
        assert len(f.train) + len(f.test) == len(trials)
    with pytest.raises(DecodeError, match="unknown cross-validation 'kfold'"):
        make_folds(trials, "kfold")  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="no loso fold"):
        make_folds(trials[:2], "loso")


def test_group_folds_stop_a_memorising_decoder():
    trials = make_trials(n_subjects=1, n_trials=8, duration_s=10, shared_groups=True)
    res = evaluate(trials, MemoryDecoder(), method="mem", windows=(5,))
    assert len(res.real) == 16 and res.real["correct"].sum() == 0  # nothing seen in training
    # the same data with the shared stimuli hidden (distinct groups) leaks completely
    for t in trials:
        t.group = f"t{t.trial}"
    res = evaluate(trials, MemoryDecoder(), method="mem", windows=(5,))
    assert res.real["correct"].mean() == 1.0


def test_evaluate_rows_accuracy_and_windows():
    trials = make_trials(n_subjects=2, n_trials=5, duration_s=31, noise=3.0, seed=1)
    res = evaluate(trials, LstsqDecoder(), method="lsq", windows=(1, 5, 30), keep_models=True)
    df = res.real
    n_per = {1.0: 31, 5.0: 6, 30.0: 1}
    for w, n in n_per.items():
        assert (df["window_s"] == w).sum() == 10 * n
    assert set(df.columns) >= {"subject", "trial", "start_s", "score", "correct", "null_rep"}
    assert (df["correct"] == (df["score"] > 0)).all()
    assert df[df["window_s"] == 5]["start_s"].max() == 25.0
    acc = df.groupby("window_s")["correct"].mean()
    assert acc[1.0] > 0.6 and acc[30.0] == 1.0 and acc[1.0] < acc[5.0]
    assert len(res.models) == len(res.folds) == 10
    assert res.null.empty


def test_gaze_decoder_without_gaze_is_refused():
    class GazeOnly(LstsqDecoder):
        uses_eeg = False
        uses_gaze = True

    with pytest.raises(DecodeError, match="no screen-mapped gaze"):
        evaluate(make_trials(1, 2, 5), GazeOnly(), method="g", windows=(1,))


def test_null_flips_per_trial_and_seeded():
    trials = make_trials(n_subjects=2, n_trials=10, duration_s=4)
    trials = [_segment(t, k) for t in trials for k in (0, 1)]
    f = null_flips(trials, seed=3, rep=0)
    assert (f[0::2] == f[1::2]).all()  # segments of one trial flip together
    assert 5 <= f.sum() <= 35
    assert (f == null_flips(trials, seed=3, rep=0)).all()
    assert (f != null_flips(trials, seed=3, rep=1)).any()


def test_null_control_at_chance_and_deterministic_across_jobs():
    trials = make_trials(n_subjects=4, n_trials=20, duration_s=30, noise=3.0, seed=2)
    res = evaluate(
        trials, LstsqDecoder(), method="lsq", windows=(1, 5), null_shuffles=6, seed=0, n_jobs=1
    )
    real = res.real.groupby("window_s")["correct"].mean()
    null = res.null
    assert real[5.0] > 0.9
    assert len(null) == 6 * 80 * (30 + 6)
    pooled = null["correct"].mean()
    assert 0.45 <= pooled <= 0.55, pooled
    per_rep = null.groupby("null_rep")["correct"].mean()
    assert per_rep.min() > 0.35 and per_rep.max() < 0.65
    # same result with two worker processes
    res2 = evaluate(
        trials[:40], LstsqDecoder(), method="lsq", windows=(5,), null_shuffles=1, n_jobs=2
    )
    res1 = evaluate(
        trials[:40], LstsqDecoder(), method="lsq", windows=(5,), null_shuffles=1, n_jobs=1
    )
    assert res1.windows.equals(res2.windows)
    calls = []
    evaluate(
        trials[:40],
        LstsqDecoder(),
        method="lsq",
        windows=(5,),
        progress=lambda d, n: calls.append((d, n)),
    )
    assert calls == [(1, 2), (2, 2)]
    assert np.isfinite(res.windows["score"]).all()


def test_backward_decoder_end_to_end_and_null_at_chance():
    from avlab.decode.linear import BackwardDecoder

    trials = make_trials(n_subjects=4, n_trials=12, duration_s=30, n_channels=6, noise=4.0, seed=7)
    dec = BackwardDecoder(sfreq=32.0, tmin=0.0, tmax=0.125, alphas=(1e-2, 1.0))
    res = evaluate(trials, dec, method="linear", windows=(1, 5, 10), null_shuffles=15, seed=0)
    acc = res.real.groupby("window_s")["correct"].mean()
    assert 0.6 < acc[1.0] < acc[5.0] <= acc[10.0]
    assert acc[10.0] > 0.9
    null = res.null
    assert len(null) == 15 * 48 * (30 + 6 + 3)  # 28 080 windows, 720 trial flips
    assert 0.45 <= null["correct"].mean() <= 0.55


def test_loso_evaluate_prepares_once_per_repetition():
    calls = []

    class Counting(LstsqDecoder):
        def prepare(self, eeg, attended, unattended=None, *, gaze=None):
            calls.append(len(eeg))
            return super().prepare(eeg, attended, unattended, gaze=gaze)

    trials = make_trials(n_subjects=3, n_trials=4, duration_s=10, noise=1.0, seed=3)
    for t in trials:  # one shared spatial pattern, so models transfer across subjects
        t.eeg = np.outer(np.ones(4), t.envelopes[0]) + 0.5 * t.eeg
    res = evaluate(trials, Counting(), method="lsq", cv="loso", windows=(5,), null_shuffles=2)
    assert calls == [12, 12, 12]  # real + 2 null repetitions, 3 folds each
    assert [f.name for f in res.folds] == ["sub-01", "sub-02", "sub-03"]
    assert sorted(res.real["fold"].unique()) == ["sub-01", "sub-02", "sub-03"]
    assert (res.real["fold"] == "sub-" + res.real["subject"]).all()
    assert res.real["correct"].mean() == 1.0 and len(res.real) == 24


def test_score_trials_matches_evaluate_rows():
    from avlab.decode.cv import WINDOW_COLUMNS, score_trials

    trials = make_trials(n_subjects=1, n_trials=4, duration_s=12, seed=4)
    dec = LstsqDecoder().fit([t.eeg for t in trials], [t.envelopes[0] for t in trials])
    res = score_trials(dec, trials, method="m", windows=(2, 5))
    assert list(res.windows.columns) == list(WINDOW_COLUMNS) and res.cv == "applied"
    assert len(res.windows) == 4 * (6 + 2) and (res.windows["fold"] == "applied").all()
    assert res.windows["correct"].mean() == 1.0 and res.null.empty
    with pytest.raises(DecodeError, match="no decision window of 20 s"):
        evaluate(trials, LstsqDecoder(), method="m", windows=(20,))


def test_loso_stimulus_disjoint_stops_cross_subject_memorising():
    trials = make_trials(n_subjects=3, n_trials=4, duration_s=10, seed=8)
    # subjects 1 and 2 heard the same stimuli (and attended the same talker); subject 3 others
    for t in trials:
        if t.subject == "02":
            src = trials[t.trial - 1]
            t.envelopes, t.stim_files = src.envelopes.copy(), src.stim_files
    res = evaluate(trials, MemoryDecoder(), method="mem", cv="loso", windows=(5,))
    acc = res.real.groupby("subject")["correct"].mean()
    assert acc["01"] == acc["02"] == 1.0 and acc["03"] == 0.0  # the leak LOSO allows
    folds = make_folds(trials, "loso", stimulus_disjoint=True)
    assert [len(f.train) for f in folds] == [4, 4, 8]
    res = evaluate(
        trials, MemoryDecoder(), method="mem", cv="loso", windows=(5,), stimulus_disjoint=True
    )
    assert res.real["correct"].sum() == 0


def test_worker_error_reaches_the_caller():
    trials = make_trials(n_subjects=2, n_trials=3, duration_s=5)
    trials[4].eeg = trials[4].eeg[:2]  # wrong channel count in sub-02
    with pytest.raises(ValueError):
        evaluate(trials, LstsqDecoder(), method="l", windows=(1,), n_jobs=2)
