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

import threading
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
    """Frames of an MP4, decoded (OpenCV) and converted ahead in a thread.

    Playback asks for increasing frame indices; a thread decodes up to
    ``prefetch`` frames ahead of the oldest one still wanted, so the drawing
    thread only uploads textures (decoding and converting a 360 x 360 frame
    takes ~3.5 ms here, which at 60 Hz with two talkers made frames late).

    Parameters
    ----------
    path : Path
    prefetch : int
        Frames decoded ahead.
    """

    def __init__(self, path: Path, prefetch: int = 12) -> None:
        import cv2

        self.path = Path(path)
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise AvlabError(f"cannot open talker video {path}.", "Rebuild the stimuli.")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS)) or 25.0
        self.n_frames = max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
        self._prefetch = prefetch
        self._frames: dict[int, np.ndarray] = {}
        self._want = 0  # oldest index still wanted
        self._next = 0  # next index the thread decodes
        self._end: int | None = None  # frames actually decodable (set at the end)
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._decode, daemon=True, name="video")
        self._thread.start()
        self.first = self.frame(0)

    def _decode(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._next - self._want >= self._prefetch:
                    self._cond.wait()
                if self._stop:
                    return
                index = self._next
            ok, bgr = self.cap.read()
            img = _to_psychopy(bgr[:, :, ::-1]) if ok else None
            with self._cond:
                if img is None:
                    self._end = index
                    self._cond.notify_all()
                    return
                self._frames[index] = img
                self._next = index + 1
                self._cond.notify_all()

    def frame(self, index: int) -> np.ndarray:
        """Return frame ``index`` as a PsychoPy RGB array, shape (h, w, 3), in [-1, 1].

        Indices past the end give the last frame; an index older than the
        frames kept gives the oldest kept (playback only moves forward).
        """
        index = int(np.clip(index, 0, self.n_frames - 1))
        with self._cond:
            index = max(index, self._want)
            self._want = index  # lets the thread decode up to index + prefetch
            self._cond.notify_all()
            while index not in self._frames:
                if self._end is not None and index >= self._end:
                    index = max(self._end - 1, self._want)
                    if index in self._frames or self._end == 0:
                        break
                self._cond.wait(1.0)
            if index not in self._frames:
                raise AvlabError(f"talker video {self.path} has no frames.", "Rebuild the stimuli.")
            for k in [k for k in self._frames if k < index]:
                del self._frames[k]
            return self._frames[index]

    def close(self) -> None:
        """Stop decoding and release the decoder."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(5.0)
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
    rush : bool
        Ask for real-time scheduling of the drawing thread (PsychoPy ``core.rush``).
    """

    def __init__(
        self,
        size: tuple[int, int],
        *,
        fullscreen: bool,
        screen: int,
        refresh_hz: float,
        photodiode: bool,
        rush: bool = True,
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
        # real-time (SCHED_RR) priority for the drawing thread, as PsychoPy's rush();
        # needs root or CAP_SYS_NICE / an rtprio limit (docs/presenter.md)
        self.rushed = bool(core.rush(True)) if rush else False
        measured = self.win.getActualFrameRate(nIdentical=10, nMaxFrames=120, nWarmUpFrames=10)
        self.measured_hz = float(measured) if measured else None
        self.pace = self.measured_hz is None or self.measured_hz > 1.5 * refresh_hz
        self.refresh_hz = refresh_hz if self.pace else float(self.measured_hz)
        self.period = 1.0 / self.refresh_hz
        self.win.refreshThreshold = 1.5 * self.period
        self.win.recordFrameIntervals = True
        self.clock = ClockMap(core.getTime)
        self.clock_source = _clock_source()
        self._swap_lsl: float | None = None
        self._hook_swap()
        self._clicks: list[tuple[float, tuple[float, float]]] = []
        self.win.winHandle.push_handlers(on_mouse_press=self._on_mouse_press)
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

    def _hook_swap(self) -> None:
        """Stamp the buffer swap itself (virtual displays without vertical blanking).

        With vertical blanking, PsychoPy's flip time (after ``glFinish``, which
        waits for the swap at the blank) is the time the picture appears. A
        virtual display (Xvfb) has no blank: the X server copies the picture
        into its framebuffer when it handles the swap request, and PsychoPy's
        ``glFinish`` then also waits for the next frame's buffer clear, a few
        ms on a software renderer. So when pacing, the swap is followed by an
        ``XSync`` (a round trip: the server has drawn the picture when it
        returns) and stamped right there.
        """
        handle = getattr(self.win, "winHandle", None)
        display = getattr(handle, "_x_display", None)
        if handle is None or display is None or not self.pace:
            return
        import pylsl
        from pyglet.libs.x11 import xlib

        swap = handle.flip

        def swap_and_stamp() -> None:
            swap()
            xlib.XSync(display, False)
            self._swap_lsl = pylsl.local_clock()

        handle.flip = swap_and_stamp

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
        self._swap_lsl = None
        t = self.win.flip(clearBuffer=clear)
        self.last_flip_lsl = self._swap_lsl or self.clock.to_lsl(t)
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

    def show_pointer(self, visible: bool) -> None:
        """Show or hide the mouse pointer."""
        self.win.mouseVisible = visible

    def _on_mouse_press(self, x: int, y: int, button: int, modifiers: int) -> None:
        import pylsl

        if button & 1:  # left
            w, h = self.win.size
            self._clicks.append((pylsl.local_clock(), ((x - w / 2) / h, (y - h / 2) / h)))

    def clicks(self) -> list[tuple[float, tuple[float, float]]]:
        """Return the left clicks since the last call.

        Returns
        -------
        clicks : list of (t_lsl, (x, y))
            LSL time at which the press event was handled (events are handled
            at every flip, so up to one frame after the press) and the
            position in height units.
        """
        out, self._clicks = self._clicks, []
        return out

    def keys(self, keys: list[str] | None = None) -> list[tuple[str, float]]:
        """Return the keys pressed since the last call, with their LSL times."""
        got = self.event.getKeys(keyList=keys, timeStamped=self.core.monotonicClock)
        return [(k, self.clock.to_lsl(self._mono_to_core(t))) for k, t in got]

    def _mono_to_core(self, t: float) -> float:
        # monotonicClock and getTime share a time base in PsychoPy (both core clocks)
        return t + (self.core.getTime() - self.core.monotonicClock.getTime())

    def close(self) -> None:
        """Close the window (and drop real-time priority)."""
        if self.rushed:
            self.core.rush(False)
        self.win.close()
