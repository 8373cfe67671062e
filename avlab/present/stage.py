"""The PsychoPy window and what is drawn in it: faces, videos, cues, tags, text.

Geometry is in PsychoPy ``height`` units (screen height 1, centre (0, 0)).
Talker videos are decoded frame by frame with OpenCV and shown as ImageStim
textures; the frame shown at a flip follows the audio clock
(``floor((t_flip - t_audio_onset) * fps)``), so lips and sound stay together
whatever the display's frame rate.

On a display without vertical-blank synchronization (a virtual screen flips
as fast as it is asked, hundreds of times per second), :meth:`Stage.flip`
paces itself to ``refresh_hz``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from avlab._logging import logger
from avlab.errors import AvlabError
from avlab.present.markers import ClockMap

__all__ = ["Stage", "VideoReader"]

_FACE_SIZE = 0.45
_PHOTODIODE = (0.0, 0.47, 0.05)  # x, y, size


def _to_psychopy(img: np.ndarray) -> np.ndarray:
    """uint8 image (rows top-down, RGB or grey) -> float RGB in [-1, 1], rows bottom-up."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.flipud(img.astype(np.float32) / 127.5 - 1.0)


def _clock_source() -> str:
    """Describe PsychoPy's time base (what ``win.flip()`` returns) on this machine."""
    try:
        import psychtoolbox as ptb
        from psychopy import clock

        if clock.getTime is ptb.GetSecs:
            return "psychtoolbox.GetSecs (CLOCK_REALTIME on Linux) minus PsychoPy's zero"
    except ImportError:
        pass
    return "timeit.default_timer (CLOCK_MONOTONIC) minus PsychoPy's zero"


class VideoReader:
    """Sequential frames of an MP4 (OpenCV), any frame index on request.

    Parameters
    ----------
    path : Path
    """

    def __init__(self, path: Path) -> None:
        import cv2

        self._cv2 = cv2
        self.path = Path(path)
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise AvlabError(f"cannot open talker video {path}.", "Rebuild the stimuli.")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS)) or 25.0
        self.n_frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._index = -1
        self._frame: np.ndarray | None = None
        self.first = self.frame(0)

    def frame(self, index: int) -> np.ndarray:
        """Return frame ``index`` (clipped to the video) as a PsychoPy RGB array."""
        index = int(np.clip(index, 0, max(self.n_frames - 1, 0)))
        if index < self._index:
            self.cap.set(self._cv2.CAP_PROP_POS_FRAMES, index)
            self._index = index - 1
        while self._index < index:
            ok, bgr = self.cap.read()
            if not ok:
                break
            self._index += 1
            self._frame = bgr
        assert self._frame is not None
        return _to_psychopy(self._frame[:, :, ::-1])

    def close(self) -> None:
        """Release the decoder."""
        self.cap.release()


class Stage:
    """The window and its standing stimuli.

    Parameters
    ----------
    size : tuple of int
        Window size in pixels.
    fullscreen : bool
    screen : int
    refresh_hz : float
        Pace to this rate when the display flips without vertical blanking.
    photodiode : bool
        Draw the photodiode patch.
    """

    def __init__(
        self,
        size: tuple[int, int],
        *,
        fullscreen: bool,
        screen: int,
        refresh_hz: float,
        photodiode: bool,
    ) -> None:
        from psychopy import core, event, logging, visual

        logging.console.setLevel(logging.ERROR)
        self.core, self.event, self.visual = core, event, visual
        try:
            self.win = visual.Window(
                size=size, fullscr=fullscreen, screen=screen, units="height",
                color=(-0.6, -0.6, -0.6), waitBlanking=True, allowGUI=False, checkTiming=False,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - pyglet/GL errors are untyped
            raise AvlabError(
                f"cannot open the presentation window: {exc}.",
                "Check DISPLAY (or run with --headless).",
            ) from exc
        self.win.mouseVisible = False
        measured = self.win.getActualFrameRate(nIdentical=10, nMaxFrames=120, nWarmUpFrames=10)
        self.measured_hz = float(measured) if measured else None
        self.pace = self.measured_hz is None or self.measured_hz > 1.5 * refresh_hz
        self.refresh_hz = refresh_hz if self.pace else float(self.measured_hz)
        self.period = 1.0 / self.refresh_hz
        self.win.refreshThreshold = 1.5 * self.period
        self.win.recordFrameIntervals = True
        self.clock = ClockMap(core.getTime)
        self.clock_source = _clock_source()
        self.aspect = self.win.size[0] / self.win.size[1]
        self._photodiode = (
            visual.Rect(self.win, width=_PHOTODIODE[2], height=_PHOTODIODE[2],
                        pos=_PHOTODIODE[:2], fillColor="black", lineColor=None)
            if photodiode else None
        )  # fmt: skip
        self._tags = self._make_tags()
        self.text = visual.TextStim(self.win, height=0.04, wrapWidth=1.2, color="white")
        self.small = visual.TextStim(self.win, height=0.03, pos=(0, -0.4), color="white")
        side = _FACE_SIZE + 0.04
        self.cue_rect = visual.Rect(
            self.win, width=side, height=side, lineColor=(1, 0.8, -1), lineWidth=8, fillColor=None
        )
        self.faces: list = []
        self._last_marked = False
        self.last_flip_lsl = self.flip()
        logger.info("window %s px, measured %s Hz, paced: %s", self.win.size,
                    self.measured_hz, self.pace)  # fmt: skip

    def _make_tags(self) -> list:
        from avlab.devices.screen import TagLayout, tag_image

        layout = TagLayout(aspect=self.aspect)
        return [
            self.visual.ImageStim(self.win, image=_to_psychopy(tag_image(i, 200)),
                                  size=(layout.size, layout.size), pos=pos, interpolate=False)
            for i, pos in layout.centres().items()
        ]  # fmt: skip

    def face_stim(self, image: np.ndarray, pos: tuple[float, float]) -> object:
        """Return an ImageStim for a talker face at ``pos``."""
        return self.visual.ImageStim(self.win, image=image, size=(_FACE_SIZE, _FACE_SIZE), pos=pos)

    def draw_frame(self, *, marked: bool) -> None:
        """Draw the standing parts (tags, photodiode patch)."""
        for t in self._tags:
            t.draw()
        if self._photodiode is not None:
            self._photodiode.fillColor = "white" if marked else "black"
            self._photodiode.draw()

    def flip(self, *, marked: bool = False) -> float:
        """Draw the standing parts, flip, and return the flip time (LSL clock, s).

        A marked flip (one that carries a marker) shows the photodiode patch
        white; every other flip shows it black. Two marked flips in a row would
        be one white period for a photodiode, so a marked flip that follows a
        marked flip is preceded by one unmarked flip of the same picture
        (the event is shown one frame later, and its marker says so).
        """
        if marked and self._last_marked and self._photodiode is not None:
            self._flip_now(marked=False, clear=False)
        return self._flip_now(marked=marked, clear=True)

    def _flip_now(self, *, marked: bool, clear: bool) -> float:
        self._last_marked = marked
        self.draw_frame(marked=marked)
        if self.pace and hasattr(self, "last_flip_lsl"):
            import pylsl

            # next tick of a fixed frame grid (a virtual vertical blank)
            now = pylsl.local_clock()
            k = max(1, int(np.ceil((now - self._grid0) / self.period)))
            wait = self._grid0 + k * self.period - now
            if wait > 0:
                time.sleep(wait)
        t = self.win.flip(clearBuffer=clear)
        self.last_flip_lsl = self.clock.to_lsl(t)
        if not hasattr(self, "_grid0"):
            self._grid0 = self.last_flip_lsl
        return self.last_flip_lsl

    def remeasure_clock(self) -> float:
        """Measure PsychoPy's clock against LSL's again; return the change, s.

        PsychoPy's clock follows the wall clock on Linux (see :func:`_clock_source`),
        so an NTP step or slew during a session moves it against LSL's monotonic
        clock; the presenter re-measures before every trial.
        """
        old = self.clock.offset_s
        self.clock = ClockMap(self.core.getTime)
        return self.clock.offset_s - old

    def next_flip_after(self, t_lsl: float) -> float:
        """Return the predicted time of the first flip at or after ``t_lsl`` (LSL clock)."""
        n = max(1, int(np.ceil((t_lsl - self.last_flip_lsl) / self.period)))
        return self.last_flip_lsl + n * self.period

    def options(self, labels: list[str]) -> list[tuple[object, object]]:
        """Return (TextStim, Rect) pairs of answer options, stacked below the centre.

        Parameters
        ----------
        labels : list of str

        Returns
        -------
        options : list of (TextStim, Rect)
            Each rectangle is the option's clickable area.
        """
        out = []
        step = min(0.09, 0.5 / max(len(labels), 1))
        for k, label in enumerate(labels):
            y = 0.1 - k * step
            box = self.visual.Rect(self.win, width=0.9, height=0.8 * step, pos=(0, y),
                                   lineColor=(0.3, 0.3, 0.3), fillColor=None)  # fmt: skip
            text = self.visual.TextStim(self.win, text=label, height=0.035, pos=(0, y),
                                        color="white", wrapWidth=0.85)  # fmt: skip
            out.append((text, box))
        return out

    def mouse(self) -> object:
        """Return a PsychoPy mouse of this window (pointer shown while it lives)."""
        self.win.mouseVisible = True
        return self.event.Mouse(win=self.win, visible=True)

    def keys(self, keys: list[str] | None = None) -> list[tuple[str, float]]:
        """Return the keys pressed since the last call, with their LSL times."""
        got = self.event.getKeys(keyList=keys, timeStamped=self.core.monotonicClock)
        return [(k, self.clock.to_lsl(self._mono_to_core(t))) for k, t in got]

    def _mono_to_core(self, t: float) -> float:
        # monotonicClock and getTime share a time base in PsychoPy (both core clocks)
        return t + (self.core.getTime() - self.core.monotonicClock.getTime())

    def close(self) -> None:
        """Close the window."""
        self.win.close()
