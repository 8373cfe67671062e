"""The Pupil Labs Time Echo protocol: a server (for the simulator) and a client.

Wire protocol (as in ``pupil_labs.realtime_api.time_echo``, v1.9): over TCP,
the client sends its time as a big-endian ``uint64``; the device answers 16
bytes, ``!QQ``: the client's value echoed, then the device clock in
**milliseconds** (Neon: Unix epoch). The device time therefore has 1 ms
resolution; :func:`measure_offset` spaces its echoes by a non-integer number of
milliseconds so that the truncation error is dithered, and averages the echoes
whose round trip is near the shortest (the real library takes the median of
integer-ms offsets). The client's 8 bytes are opaque to the device: we send
the LSL clock in nanoseconds.

Convention (as LSL ``time_correction``): ``local_time = device_time + offset``.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable

import numpy as np
import pylsl
from pydantic import BaseModel, ConfigDict

from avlab._logging import logger
from avlab.errors import AvlabError

__all__ = ["TimeEchoError", "TimeEchoResult", "TimeEchoServer", "measure_offset"]

_REQ = struct.Struct("!Q")
_RESP = struct.Struct("!QQ")
#: Resolution of the device time in the protocol, seconds.
RESOLUTION_S = 1e-3


class TimeEchoError(AvlabError, ConnectionError):
    """A time-echo server cannot be reached or answers nonsense."""

    exit_code = 7


class TimeEchoResult(BaseModel):
    """One offset estimate from a burst of echoes.

    Attributes
    ----------
    local_time_s : float
        Local LSL clock at the estimate (mean of the used echoes' midpoints), s.
    offset_s : float
        ``local_time = device_time + offset``, s.
    rtt_s : float
        Shortest round trip of the burst, s.
    n_used : int
        Echoes averaged (those with a round trip within 0.5 ms of the shortest).
    offset_sd_s : float
        Standard deviation of the used echoes' offsets, s (≈ 0.29 ms from the
        1 ms quantization alone).
    """

    model_config = ConfigDict(extra="forbid")

    local_time_s: float
    offset_s: float
    rtt_s: float
    n_used: int = 1
    offset_sd_s: float = 0.0


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while not self.server.stopping:
            try:
                data = sock.recv(64)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 8:
                (client,) = _REQ.unpack(buf[:8])
                buf = buf[8:]
                now_ms = int(self.server.device_clock_ns() // 1_000_000)
                sock.sendall(_RESP.pack(client, now_ms))


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    device_clock_ns: Callable[[], int]
    stopping = False


class TimeEchoServer:
    """A Time Echo server answering with a device clock.

    Parameters
    ----------
    device_clock_ns : callable
        Returns the device time in integer nanoseconds (must be ≥ 0).
    host : str
        Address to listen on.
    port : int
        TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
    """

    def __init__(
        self, device_clock_ns: Callable[[], int], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._clock = device_clock_ns
        self.host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    def start(self) -> TimeEchoServer:
        """Start listening in a background thread.

        Returns
        -------
        self : TimeEchoServer
        """
        try:
            server = _Server((self.host, self._port), _Handler)
        except OSError as exc:
            raise TimeEchoError(
                f"cannot open the time-echo server on {self.host}:{self._port}: {exc.strerror}.",
                "Choose another port (0 picks a free one).",
            ) from exc
        server.device_clock_ns = self._clock
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        logger.debug("time-echo server on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop the server and close its socket."""
        if self._server is not None:
            self._server.stopping = True
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> TimeEchoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError("connection closed by the time-echo server")
        buf += part
    return buf


def measure_offset(
    host: str,
    port: int,
    *,
    n_echoes: int = 10,
    timeout_s: float = 1.0,
    interval_s: float = 0.00137,
) -> TimeEchoResult:
    """Estimate the offset of a device clock from a burst of time echoes.

    Parameters
    ----------
    host : str
        Device address.
    port : int
        Its time-echo TCP port.
    n_echoes : int
        Echoes in the burst (the first, which opens the connection, is dropped).
    timeout_s : float
        Connection and per-echo timeout, seconds.
    interval_s : float
        Pause between echoes, seconds; a non-integer number of milliseconds
        dithers the 1 ms truncation of the device time.

    Returns
    -------
    result : TimeEchoResult
        ``offset_s`` such that ``local = device + offset`` at ``local_time_s``.
    """
    if n_echoes < 1:
        raise ValueError(f"n_echoes={n_echoes} must be at least 1")
    rows = []
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(n_echoes + 1):
                t1 = pylsl.local_clock()
                token = int(t1 * 1e9) & 0xFFFFFFFFFFFFFFFF
                sock.sendall(_REQ.pack(token))
                echoed, device_ms = _RESP.unpack(_recv_exact(sock, 16))
                t2 = pylsl.local_clock()
                if echoed != token:
                    raise TimeEchoError(
                        f"time-echo server {host}:{port} echoed {echoed}, expected {token}.",
                        "Check that the port belongs to a Time Echo server.",
                    )
                if i:  # drop the first echo (connection warm-up), as the real client does
                    rows.append((t1, t2, device_ms))
                if interval_s > 0:
                    time.sleep(interval_s)
    except (OSError, ConnectionError) as exc:
        raise TimeEchoError(
            f"time-echo request to {host}:{port} failed: {exc}.",
            "Check that the device (or `avlab sim`) is running and the address is right.",
        ) from exc
    arr = np.array(rows, dtype=float)
    rtt = arr[:, 1] - arr[:, 0]
    mid = 0.5 * (arr[:, 0] + arr[:, 1])
    # device_ms is the truncated device time: the true reading is on average 0.5 ms later
    offsets = mid - (arr[:, 2] * RESOLUTION_S + 0.5 * RESOLUTION_S)
    use = rtt <= rtt.min() + 0.5e-3
    return TimeEchoResult(
        local_time_s=float(mid[use].mean()),
        offset_s=float(offsets[use].mean()),
        rtt_s=float(rtt.min()),
        n_used=int(use.sum()),
        offset_sd_s=float(offsets[use].std()),
    )
