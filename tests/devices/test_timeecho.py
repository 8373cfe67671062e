"""Pupil Labs Time Echo: our server and client, and the real library's estimator."""

from __future__ import annotations

import asyncio

import numpy as np
import pylsl
import pytest

from avlab.devices.timeecho import TimeEchoError, TimeEchoServer, measure_offset

DEVICE_OFFSET_S = 1.7e9


def _device(drift_ppm: float):
    def clock_ns() -> int:
        return int((DEVICE_OFFSET_S + pylsl.local_clock() * (1 + drift_ppm * 1e-6)) * 1e9)

    return clock_ns


def _true_offset(local: float, drift_ppm: float) -> float:
    return local - (DEVICE_OFFSET_S + local * (1 + drift_ppm * 1e-6))


def test_offset_within_1ms() -> None:
    with TimeEchoServer(_device(20.0)) as server:
        for _ in range(3):
            res = measure_offset("127.0.0.1", server.port, n_echoes=20)
            err = res.offset_s - _true_offset(res.local_time_s, 20.0)
            assert abs(err) < 1e-3
            assert 0 < res.rtt_s < 0.05 and res.n_used >= 1


def test_drift_recovered() -> None:
    drift = 2000.0  # ppm: 2 ms per second, large enough to see over 2 s
    with TimeEchoServer(_device(drift)) as server:
        rows = []
        t_end = pylsl.local_clock() + 2.0
        while pylsl.local_clock() < t_end:
            r = measure_offset("127.0.0.1", server.port, n_echoes=10)
            rows.append((r.local_time_s, r.offset_s))
    t, off = np.array(rows).T
    slope = np.polyfit(t - t[0], off - off[0], 1)[0]
    # offset = local - device => d(offset)/dt = -drift
    assert slope == pytest.approx(-drift * 1e-6, rel=0.1)


def test_unreachable_server_is_clear_error() -> None:
    server = TimeEchoServer(_device(0.0)).start()
    port = server.port
    server.stop()
    with pytest.raises(TimeEchoError, match=f"127.0.0.1:{port}"):
        measure_offset("127.0.0.1", port, timeout_s=0.5)


def test_real_pupil_labs_estimator_agrees() -> None:
    from pupil_labs.realtime_api import time_echo

    def client_ms() -> int:
        return int(pylsl.local_clock() * 1000)

    with TimeEchoServer(_device(0.0)) as server:
        est = time_echo.TimeOffsetEstimator("127.0.0.1", server.port)
        result = asyncio.run(est.estimate(number_of_measurements=20, time_fn_ms=client_ms))
        ours = measure_offset("127.0.0.1", server.port, n_echoes=20)
    assert result is not None
    # theirs: integer ms, client time - host time
    assert result.time_offset_ms.median / 1000.0 == pytest.approx(ours.offset_s, abs=2e-3)
