"""Screen tags and gaze mapping: a synthetic scene seen through a known perspective."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avlab.devices.screen import (
    DEFAULT_FACES,
    TAG_IDS,
    ScreenMapError,
    ScreenMapper,
    TagLayout,
    face_hit,
    sim_scene_homography,
    tag_image,
)

WIN_H = 1080  # window height, px
LAYOUT = TagLayout(aspect=16 / 9, size=0.12, margin=0.01)
WIN_W = int(round(WIN_H * LAYOUT.aspect))


def _screen_to_win_px(xy: np.ndarray) -> np.ndarray:
    """Height units -> window pixels (pixel-centre convention, y down)."""
    xy = np.asarray(xy, float)
    return np.stack(
        [(xy[..., 0] + LAYOUT.aspect / 2) * WIN_H - 0.5, (0.5 - xy[..., 1]) * WIN_H - 0.5], -1
    )


def _window_image(hide: tuple[int, ...] = ()) -> np.ndarray:
    img = np.full((WIN_H, WIN_W), 128, np.uint8)
    for cx, cy, w, h in DEFAULT_FACES:  # faces as darker rectangles
        (x0, y0), (x1, y1) = _screen_to_win_px(
            np.array([[cx - w / 2, cy + h / 2], [cx + w / 2, cy - h / 2]])
        )
        img[int(y0) : int(y1), int(x0) : int(x1)] = 90
    side = int(round(LAYOUT.size * WIN_H))
    for tid, (cx, cy) in LAYOUT.centres().items():
        if tid in hide:
            continue
        x0, y0 = (
            int(round(v + 0.5))
            for v in _screen_to_win_px(np.array([cx - LAYOUT.size / 2, cy + LAYOUT.size / 2]))
        )
        img[y0 : y0 + side, x0 : x0 + side] = tag_image(tid, side)
    return img


def _scene(hide: tuple[int, ...] = (), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Warp the window into a 1600 x 1200 scene; returns (scene, H window px -> scene px)."""
    src = np.float32([[0, 0], [WIN_W - 1, 0], [WIN_W - 1, WIN_H - 1], [0, WIN_H - 1]])
    dst = np.float32([[260, 300], [1390, 250], [1350, 930], [290, 890]])  # oblique view
    h = cv2.getPerspectiveTransform(src, dst)
    rng = np.random.default_rng(seed)
    background = rng.integers(20, 60, (1200, 1600), dtype=np.uint8)
    warped = cv2.warpPerspective(
        _window_image(hide), h, (1600, 1200), flags=cv2.INTER_LINEAR, borderValue=0
    )
    mask = cv2.warpPerspective(
        np.full((WIN_H, WIN_W), 255, np.uint8), h, (1600, 1200), borderValue=0
    )
    scene = np.where(mask > 127, warped, background).astype(float)
    scene += rng.normal(0, 4.0, scene.shape)
    return np.clip(scene, 0, 255).astype(np.uint8), h


def _to_scene(h: np.ndarray, xy_screen: np.ndarray) -> np.ndarray:
    px = _screen_to_win_px(xy_screen)
    return cv2.perspectiveTransform(px[None].astype(np.float64), h)[0]


def test_tag_image_decodes_to_its_id() -> None:
    mapper = ScreenMapper(LAYOUT)
    for tid in TAG_IDS:
        img = tag_image(tid, 100)
        assert img.shape == (100, 100) and img.dtype == np.uint8
        assert set(np.unique(img)) == {0, 255}
        assert img[:10].min() == 255 and img[:, -10:].min() == 255  # quiet zone
        page = np.pad(img, 20, constant_values=255)
        found = mapper.find_tags(page)
        assert list(found) == [tid]
        # detector corner order: marker's top-right, top-left, bottom-left, bottom-right
        assert found[tid] == pytest.approx(
            np.array([[109.5, 29.5], [29.5, 29.5], [29.5, 109.5], [109.5, 109.5]]), abs=0.6
        )
    assert tag_image(5, 137).shape == (137, 137)
    with pytest.raises(ValueError, match="tag_id=999"):
        tag_image(999, 100)


def test_layout_corners() -> None:
    c = LAYOUT.centres()
    half_w = LAYOUT.aspect / 2
    assert c[0] == pytest.approx((-half_w + 0.07, 0.43))
    assert c[2] == pytest.approx((half_w - 0.07, -0.43))
    corners = LAYOUT.marker_corners()[1]
    assert corners.shape == (4, 2)
    assert np.ptp(corners[:, 0]) == pytest.approx(0.096)  # 8 of 10 cells
    with pytest.raises(ScreenMapError, match="overlap"):
        TagLayout(aspect=1.0, size=0.3, margin=0.2).centres()


def test_mapping_through_perspective_within_001() -> None:
    scene, h = _scene()
    mapper = ScreenMapper(LAYOUT)
    assert mapper.detect(scene) == [0, 1, 2, 3]
    rng = np.random.default_rng(1)
    truth = np.column_stack([rng.uniform(-0.8, 0.8, 200), rng.uniform(-0.45, 0.45, 200)])
    truth = np.vstack([truth, DEFAULT_FACES[:, :2]])
    mapped = mapper.map_gaze(_to_scene(h, truth))
    err = np.linalg.norm(mapped - truth, axis=1)
    assert err.max() < 0.01, err.max()
    assert np.median(err) < 0.003
    # the face test on the mapped points agrees with the truth
    assert np.array_equal(face_hit(mapped[-2:]), [0, 1])
    assert mapper.map_gaze(_to_scene(h, np.array([[0.45, 0.05]]))[0]).shape == (2,)


def test_two_tags_enough_one_tag_gives_nan() -> None:
    scene, h = _scene(hide=(1, 3), seed=2)
    mapper = ScreenMapper(LAYOUT, min_tags=2)
    assert mapper.detect(scene) == [0, 2]
    pts = np.array([[-0.45, 0.05], [0.45, 0.05], [0.0, 0.0]])
    assert np.abs(mapper.map_gaze(_to_scene(h, pts)) - pts).max() < 0.01
    scene1, h1 = _scene(hide=(1, 2, 3), seed=3)
    assert mapper.detect(scene1) == [0]
    assert mapper.homography is None
    assert np.isnan(mapper.map_gaze(_to_scene(h1, pts))).all()


def test_face_hit() -> None:
    pts = np.array([[-0.45, 0.05], [0.45, 0.27], [0.0, 0.05], [0.45, 0.29], [np.nan, 0.0]])
    assert face_hit(pts).tolist() == [0, 1, -1, -1, -1]
    assert face_hit(pts[3], margin=0.02) == 1
    assert face_hit(np.array([0.0, 0.0]), [[0.0, 0.0, 0.1, 0.1]]) == 0


def test_sim_gaze_lands_on_screen_faces() -> None:
    from avlab.sim.gaze import FACES
    from avlab.sim.participant import screen_to_scene

    mapper = ScreenMapper(homography=sim_scene_homography())
    faces_px = screen_to_scene(DEFAULT_FACES[:, :2])
    assert mapper.map_gaze(faces_px) == pytest.approx(DEFAULT_FACES[:, :2], abs=1e-9)
    # the free-running simulator's face centres fall inside the screen faces
    assert face_hit(mapper.map_gaze(FACES)).tolist() == [0, 1]
