"""Screen AprilTags and mapping of scene-camera gaze onto the screen.

Four AprilTags (family tag36h11, ids 0, 1, 2, 3 = top-left, top-right,
bottom-right, bottom-left) sit in the window corners. The presenter draws them
from :func:`tag_image` at the positions of :class:`TagLayout`; the
:class:`ScreenMapper` finds them in a scene-camera frame (Neon's world camera)
with ``pupil_apriltags`` and fits the homography from scene pixels to screen
coordinates, so that gaze (scene pixels) can be tested against the talker faces
(:func:`face_hit`).

Screen coordinates are PsychoPy ``height`` units: the window spans
``x`` in ``[-aspect / 2, aspect / 2]`` and ``y`` in ``[-0.5, 0.5]``, y up,
origin at the window centre.

A tag image is 10 x 10 cells: the 8 x 8-cell marker (6 x 6 data bits inside a
black border) and a 1-cell white quiet zone around it. :attr:`TagLayout.size`
is the side of the whole image (quiet zone included); the homography uses the
four corners of each black marker square (``0.8 * size``).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from avlab._logging import logger
from avlab.errors import AvlabError

if TYPE_CHECKING:
    from pupil_apriltags import Detector

__all__ = [
    "DEFAULT_FACES",
    "TAG_FAMILY",
    "TAG_IDS",
    "ScreenMapError",
    "ScreenMapper",
    "TagLayout",
    "face_hit",
    "sim_scene_homography",
    "tag_image",
]

TAG_FAMILY = "tag36h11"
#: Tag ids in the corners: top-left, top-right, bottom-right, bottom-left.
TAG_IDS = (0, 1, 2, 3)
#: Talker faces on screen, rows ``(centre_x, centre_y, width, height)``, height units
#: (talker 0 left, talker 1 right).
DEFAULT_FACES = np.array([[-0.45, 0.05, 0.45, 0.45], [0.45, 0.05, 0.45, 0.45]])
_CELLS = 10  # whole tag image, cells
_MARKER_CELLS = 8  # black marker square, cells
# Detector corner order in the marker's own image frame (u right, v down, 0..1):
# pupil_apriltags returns the corners in this order for an upright cv2 marker.
_CORNER_UV = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


class ScreenMapError(AvlabError, ValueError):
    """A tag layout or a scene frame cannot be used for screen mapping."""

    exit_code = 11


class TagLayout(BaseModel):
    """Where the four corner tags are drawn.

    Attributes
    ----------
    aspect : float
        Window width / height (16 / 9 for 1920 x 1080).
    size : float
        Side of a tag image including its quiet zone, height units.
    margin : float
        Gap between the window edge and the tag image, height units.
    """

    model_config = ConfigDict(extra="forbid")

    aspect: float = Field(16.0 / 9.0, gt=0.5, le=4.0)
    size: float = Field(0.12, gt=0.0, le=0.4)
    margin: float = Field(0.01, ge=0.0, le=0.2)

    def centres(self) -> dict[int, tuple[float, float]]:
        """Centre of each tag image, height units.

        Returns
        -------
        centres : dict
            ``{tag_id: (x, y)}`` for ids 0..3 (top-left, top-right,
            bottom-right, bottom-left).
        """
        dx = self.aspect / 2.0 - self.margin - self.size / 2.0
        dy = 0.5 - self.margin - self.size / 2.0
        if dx <= self.size / 2.0 or dy <= self.size / 2.0:
            raise ScreenMapError(
                f"tags of size {self.size} with margin {self.margin} overlap in a window "
                f"of aspect {self.aspect:.3f}.",
                "Use smaller tags or a smaller margin.",
            )
        signs = ((-1, 1), (1, 1), (1, -1), (-1, -1))
        return {tid: (sx * dx, sy * dy) for tid, (sx, sy) in zip(TAG_IDS, signs, strict=True)}

    def marker_corners(self) -> dict[int, np.ndarray]:
        """Corners of each black marker square, in the detector's corner order.

        Returns
        -------
        corners : dict of int to ndarray, shape (4, 2)
            Screen coordinates (height units, y up) of the corners that
            ``pupil_apriltags`` reports, in the same order.
        """
        side = self.size * _MARKER_CELLS / _CELLS
        out = {}
        for tid, (cx, cy) in self.centres().items():
            x = cx - side / 2.0 + side * _CORNER_UV[:, 0]
            y = cy + side / 2.0 - side * _CORNER_UV[:, 1]
            out[tid] = np.stack([x, y], axis=1)
        return out


def tag_image(tag_id: int, pixels: int) -> np.ndarray:
    """Image of one tag36h11 tag with a white quiet zone.

    Parameters
    ----------
    tag_id : int
        Tag id (0..586).
    pixels : int
        Side of the returned image in pixels (quiet zone included); a
        multiple of 10 gives crisp cells.

    Returns
    -------
    image : ndarray, shape (pixels, pixels), uint8
        0 (black) / 255 (white), row 0 at the top. For PsychoPy, write it to a
        PNG (``cv2.imwrite``) and pass the path, or pass
        ``np.flipud(image) / 127.5 - 1`` as a numpy texture (PsychoPy puts
        array row 0 at the bottom).
    """
    import cv2

    if not 0 <= tag_id < 587:
        raise ValueError(f"tag_id={tag_id} is not a tag36h11 id (0..586)")
    if pixels < _CELLS:
        raise ValueError(f"pixels={pixels} must be at least {_CELLS}")
    cell = max(1, pixels // _CELLS)
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h11)
    marker = cv2.aruco.generateImageMarker(dictionary, tag_id, _MARKER_CELLS * cell)
    img = np.full((_CELLS * cell, _CELLS * cell), 255, dtype=np.uint8)
    img[cell : cell + marker.shape[0], cell : cell + marker.shape[1]] = marker
    if img.shape[0] != pixels:
        img = cv2.resize(img, (pixels, pixels), interpolation=cv2.INTER_NEAREST)
    return img


def sim_scene_homography() -> np.ndarray:
    """Homography of the simulated Neon's scene camera (pixels) onto the screen.

    The simulator (:func:`avlab.sim.participant.screen_to_scene`) places the
    screen centre at scene pixel (800, 600) with
    :data:`~avlab.sim.participant.SCENE_PX_PER_HEIGHT` pixels per height unit
    and y flipped; this is the inverse.

    Returns
    -------
    H : ndarray, shape (3, 3)
        ``screen ~ H @ [x_px, y_px, 1]``.
    """
    from avlab.sim.participant import SCENE_PX_PER_HEIGHT

    k = 1.0 / SCENE_PX_PER_HEIGHT
    return np.array([[k, 0.0, -800.0 * k], [0.0, -k, 600.0 * k], [0.0, 0.0, 1.0]])


class ScreenMapper:
    """Maps scene-camera gaze onto the screen through the corner AprilTags.

    Call :meth:`detect` on each scene frame (or every few frames), then
    :meth:`map_gaze` for the gaze samples of that frame.

    Parameters
    ----------
    layout : TagLayout
        Where the tags are drawn.
    min_tags : int
        Tags that must be seen for a homography (2..4; each tag gives its 4
        corners). With fewer, :meth:`map_gaze` returns NaN.
    homography : ndarray, shape (3, 3), optional
        A fixed scene -> screen homography (e.g. :func:`sim_scene_homography`
        for simulated gaze); :meth:`detect` replaces it.
    decimate : float
        ``quad_decimate`` of the detector (2 is faster on large frames).
    """

    def __init__(
        self,
        layout: TagLayout | None = None,
        *,
        min_tags: int = 2,
        homography: np.ndarray | None = None,
        decimate: float = 1.0,
    ) -> None:
        if not 1 <= min_tags <= 4:
            raise ValueError(f"min_tags={min_tags} must be 1..4")
        self.layout = layout or TagLayout()
        self.min_tags = min_tags
        self._model = self.layout.marker_corners()
        self._decimate = decimate
        self._detector: Detector | None = None
        self.homography: np.ndarray | None = None
        self.tags_seen: list[int] = []
        if homography is not None:
            self.homography = np.asarray(homography, dtype=float).reshape(3, 3)

    def _get_detector(self) -> Detector:
        if self._detector is None:
            from pupil_apriltags import Detector

            self._detector = Detector(families=TAG_FAMILY, quad_decimate=self._decimate)
            weakref.finalize(self, _destroy_detector, self._detector)
        return self._detector

    def find_tags(self, frame: np.ndarray) -> dict[int, np.ndarray]:
        """Detect every tag36h11 tag in an image.

        Parameters
        ----------
        frame : ndarray, shape (height, width) or (height, width, 3)
            Image, uint8 (colour: only luminance is used).

        Returns
        -------
        corners : dict of int to ndarray, shape (4, 2)
            ``{tag_id: corners}`` in pixels, OpenCV convention (pixel centres
            at integers), in the detector's corner order; only error-free
            decodes (Hamming distance 0).
        """
        gray = np.asarray(frame)
        if gray.ndim == 3:
            gray = gray.mean(axis=2)
        if gray.ndim != 2:
            raise ScreenMapError(
                f"scene frame has shape {np.shape(frame)}.",
                "Pass an (h, w) or (h, w, 3) image.",
            )
        gray = np.ascontiguousarray(np.clip(gray, 0, 255).astype(np.uint8))
        found: dict[int, np.ndarray] = {}
        for det in self._get_detector().detect(gray):
            if det.hamming == 0:
                # apriltag puts pixel centres at +0.5; convert to OpenCV's convention
                found[int(det.tag_id)] = np.asarray(det.corners, dtype=float) - 0.5
        return found

    def detect(self, frame: np.ndarray) -> list[int]:
        """Find the corner tags in a scene frame and update the homography.

        Parameters
        ----------
        frame : ndarray, shape (height, width) or (height, width, 3)
            Scene-camera image, uint8 (colour frames are BGR or RGB; only
            luminance is used).

        Returns
        -------
        tag_ids : list of int
            Layout tags found. With fewer than ``min_tags`` the homography is
            cleared (:meth:`map_gaze` gives NaN).
        """
        found = {k: v for k, v in self.find_tags(frame).items() if k in self._model}
        self.tags_seen = sorted(found)
        if len(found) < self.min_tags:
            self.homography = None
            return self.tags_seen
        src = np.concatenate([found[t] for t in self.tags_seen])
        dst = np.concatenate([self._model[t] for t in self.tags_seen])
        self.homography = _fit_homography(src, dst)
        return self.tags_seen

    def map_gaze(self, xy_scene_px: np.ndarray) -> np.ndarray:
        """Map scene-camera gaze onto the screen.

        Parameters
        ----------
        xy_scene_px : ndarray, shape (n, 2) or (2,)
            Gaze in scene-camera pixels (x right, y down).

        Returns
        -------
        xy_screen : ndarray, shape (n, 2) or (2,)
            Screen coordinates, height units (y up); NaN when no homography
            (fewer than ``min_tags`` tags in the last :meth:`detect`).
        """
        xy = np.asarray(xy_scene_px, dtype=float)
        flat = xy.reshape(-1, 2)
        if self.homography is None:
            return np.full(xy.shape, np.nan)
        h = np.column_stack([flat, np.ones(len(flat))]) @ self.homography.T
        with np.errstate(divide="ignore", invalid="ignore"):
            out = h[:, :2] / h[:, 2:3]
        return out.reshape(xy.shape)


def _destroy_detector(det: Detector) -> None:
    """Free a ``pupil_apriltags`` detector safely.

    ``Detector.__del__`` (pupil-apriltags 1.0.4) frees the tag families before
    the detector, whose destruction then reads them: a segfault (upstream
    pupil-labs/apriltags#46, PR #65). Free in the right order and disarm it.
    """
    ptr = getattr(det, "tag_detector_ptr", None)
    if ptr is None:
        return
    libc = det.libc
    libc.apriltag_detector_destroy.restype = None
    libc.apriltag_detector_destroy(ptr)
    for family, tf in det.tag_families.items():
        destroy = getattr(libc, f"{family}_destroy")
        destroy.restype = None
        destroy(tf)
    det.tag_detector_ptr = None


def _fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography (normalized DLT) from ``src`` to ``dst`` points."""
    import cv2

    h, _ = cv2.findHomography(src.astype(np.float64), dst.astype(np.float64), 0)
    if h is None:  # degenerate corners
        logger.debug("homography fit failed for %d points", len(src))
        raise ScreenMapError(
            "the detected tag corners are degenerate (collinear).",
            "Check the scene camera sees the screen.",
        )
    return h


def face_hit(
    xy_screen: np.ndarray,
    faces: np.ndarray | Sequence[Sequence[float]] = DEFAULT_FACES,
    *,
    margin: float = 0.0,
) -> np.ndarray:
    """Which talker face each gaze point falls on.

    Parameters
    ----------
    xy_screen : ndarray, shape (n, 2) or (2,)
        Gaze on the screen, height units (NaN allowed).
    faces : array-like, shape (k, 4)
        Face rectangles, rows ``(centre_x, centre_y, width, height)`` in
        height units, in talker order (default :data:`DEFAULT_FACES`).
    margin : float
        Extra tolerance around each face, height units.

    Returns
    -------
    talker : ndarray of int, shape (n,), or int
        Index of the face hit, -1 for none (or NaN gaze). The first face wins
        where faces overlap.
    """
    xy = np.asarray(xy_screen, dtype=float)
    single = xy.ndim == 1
    pts = xy.reshape(-1, 2)
    boxes = np.asarray(faces, dtype=float).reshape(-1, 4)
    half = boxes[:, 2:] / 2.0 + margin  # (k, 2)
    d = np.abs(pts[:, None, :] - boxes[None, :, :2])  # (n, k, 2)
    inside = np.all(d <= half[None], axis=2)  # NaN compares False
    hit = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    return int(hit[0]) if single else hit
