"""The lab's own devices during a real (not simulated) run.

Cameras (OpenCV -> ``camera-<name>.mp4`` + a frame-time LSL stream),
microphones (sounddevice -> ``mic-<name>.flac`` + a block-time LSL stream)
and the Pupil Labs Neon (its own recording started and stopped with the
session, session events sent to it, optionally its gaze relayed into LSL).
Each adapter publishes its LSL stream first and waits for the recorder to
connect before the first frame/block, so file frame ``k`` is recorded sample ``k``.

Tested: each adapter against its real library (``tests/devices``); this
wiring only through ``--simulate`` runs, where the simulated lab stands in for
all of them (no camera, microphone or Neon on the build machine).
"""

from __future__ import annotations

import threading
from pathlib import Path

from avlab._logging import logger
from avlab.errors import AvlabError

__all__ = ["LabDevices", "parse_assignments"]

_CONSUMER_WAIT_S = 30.0


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    """Parse ``NAME=SOURCE`` options (``--camera scene=0``).

    Parameters
    ----------
    items : list of str
    what : str
        Option name for the error message.

    Returns
    -------
    mapping : dict of str to str
    """
    out = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise AvlabError(f"{what} {item!r} is not NAME=SOURCE.", f"Write e.g. {what} scene=0.")
        out[name] = source
    return out


class LabDevices:
    """Start and stop the cameras, microphones and Neon a protocol names.

    Parameters
    ----------
    folder : Path
        Session folder (media files go there).
    cameras : dict of str to str
        Protocol camera name -> OpenCV source (index or URL).
    microphones : dict of str to str
        Protocol microphone name -> sounddevice input (index or name part).
    neon : bool
        Use the Neon (its recording and events).
    neon_address : str | None
        ``host[:port]``; None discovers it.
    neon_relay : bool
        Relay its gaze into LSL (when the Companion app's LSL output is off).
    """

    def __init__(
        self,
        folder: Path,
        *,
        cameras: dict[str, str],
        microphones: dict[str, str],
        neon: bool = False,
        neon_address: str | None = None,
        neon_relay: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.cameras, self.microphones = cameras, microphones
        self.use_neon, self.neon_address, self.neon_relay = neon, neon_address, neon_relay
        self.neon = None
        self._adapters: list = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.stream_names: list[str] = []

    def start(self) -> list[str]:
        """Publish every device's LSL stream; return their names (to record)."""
        from avlab.devices.camera import CameraRecorder
        from avlab.devices.microphone import MicrophoneRecorder

        for name, src in self.cameras.items():
            source: int | str = int(src) if src.isdigit() else src
            cam = CameraRecorder(source, self.folder / f"camera-{name}.mp4",
                                 stream_name=f"avlab-camera-{name}")  # fmt: skip
            self._spawn(cam)
            self.stream_names.append(f"avlab-camera-{name}")
        for name, dev in self.microphones.items():
            device: int | str = int(dev) if dev.isdigit() else dev
            mic = MicrophoneRecorder(device, self.folder / f"mic-{name}.flac", channels=1,
                                     srate=48000, stream_name=f"avlab-mic-{name}")  # fmt: skip
            self._spawn(mic)
            self.stream_names.append(f"avlab-mic-{name}")
        if self.use_neon:
            self._start_neon()
        return self.stream_names

    def _spawn(self, adapter: object) -> None:
        self._adapters.append(adapter)
        t = threading.Thread(
            target=lambda: adapter.start(wait_for_consumer_s=_CONSUMER_WAIT_S),  # type: ignore[attr-defined]
            daemon=True,
        )
        t.start()
        self._threads.append(t)

    def _start_neon(self) -> None:
        from avlab.devices.neon import NeonAdapter

        if self.neon_address:
            host, _, port = self.neon_address.partition(":")
            self.neon = NeonAdapter.connect(host, int(port or 8080))
        else:
            self.neon = NeonAdapter.discover_one(10.0)
        self.neon.check()
        rec = self.neon.start_recording()
        logger.info("Neon recording %s started", rec)
        if self.neon_relay:
            kw = {"wait_for_consumer_s": _CONSUMER_WAIT_S}
            t = threading.Thread(target=self.neon.relay, args=(self._stop,), kwargs=kw, daemon=True)
            t.start()
            self._threads.append(t)
            self.stream_names.append("Neon-Gaze")

    def event(self, name: str, lsl_time: float | None = None) -> None:
        """Send a session event to the Neon's own recording (if used)."""
        if self.neon is not None:
            try:
                self.neon.send_event(name, lsl_time)
            except AvlabError as exc:
                logger.warning("Neon event %s not sent: %s", name, exc)

    def stop(self) -> None:
        """Stop everything; a device error is logged, never raised (data are kept)."""
        self._stop.set()
        for a in self._adapters:
            try:
                a.stop()
            except AvlabError as exc:
                logger.error("%s", exc)
        if self.neon is not None:
            try:
                self.neon.stop_recording(save=True)
            except AvlabError as exc:
                logger.error("%s", exc)
            self.neon.close()
        for t in self._threads:
            t.join(5.0)
