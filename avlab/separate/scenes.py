"""Spatial test scenes: talkers around a listener wearing a hearing-aid array.

The scenes feed the classical multi-microphone baseline
(:mod:`avlab.separate.beamform`). Room acoustics come from the image-source
method of pyroomacoustics (a shoebox room); the microphones are omnidirectional
points in **free field**: there is no head between the two ears, so the scenes
have no head shadow and no interaural level difference beyond the 1/r spreading
of the image-source model. Real behind-the-ear recordings differ (the head
shadows the far ear above ~1 kHz); results on these scenes are therefore an
optimistic bound for an array whose steering model ignores the head.

Coordinates: x points straight ahead of the listener, y to the listener's left,
z up. Azimuth 0 deg is straight ahead (+x), positive azimuths turn towards the
left (counter-clockwise seen from above), +90 deg is the left ear side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avlab._logging import logger
from avlab.separate.inference import SeparateError

__all__ = ["SpatialScene", "hearing_aid_array", "simulate_scene", "diffuse_noise"]

#: Height of the listener's ears above the floor, m.
EAR_HEIGHT_M = 1.2
#: Smallest distance kept between any source or microphone and a wall, m.
_WALL_MARGIN_M = 0.1
#: Speed of sound used for the diffuse-noise coherence, m/s.
_C = 343.0


def hearing_aid_array() -> np.ndarray:
    """Microphone layout of a bilateral pair of behind-the-ear hearing aids.

    Two microphones per ear, the ears at y = +/-0.08 m, each ear's front and
    back microphone 0.012 m apart on the x axis (x = front), centred on the
    ear. Positions are relative to the centre of the head; the scene adds the
    listener position (ear height 1.2 m). The layout is free-field: nothing
    models the head between the ears (no head shadow).

    Returns
    -------
    positions : ndarray, shape (3, 4)
        Microphone positions in m, columns ordered left-front, left-back,
        right-front, right-back (index 0, left-front, is the reference).
    """
    half = 0.012 / 2
    ear = 0.08
    return np.array(
        [
            [half, -half, half, -half],
            [ear, ear, -ear, -ear],
            [0.0, 0.0, 0.0, 0.0],
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class SpatialScene:
    """A simulated multi-microphone recording of several talkers.

    Attributes
    ----------
    mics : ndarray, shape (n_mic, n_samples)
        What the microphones record: the sum of all talker images plus noise.
    images : ndarray, shape (n_src, n_mic, n_samples)
        Each talker's image at each microphone (room response included),
        the reference signals for scoring.
    noise : ndarray, shape (n_mic, n_samples)
        The noise at each microphone (zeros when the scene has no noise).
    mic_positions : ndarray, shape (3, n_mic)
        Absolute microphone positions in the room, m.
    azimuths_deg : ndarray, shape (n_src,)
        Talker directions, deg (0 = ahead, positive = left).
    srate : int
        Sampling rate, Hz.
    """

    mics: np.ndarray
    images: np.ndarray
    noise: np.ndarray
    mic_positions: np.ndarray
    azimuths_deg: np.ndarray
    srate: int

    @property
    def n_mic(self) -> int:
        """Number of microphones."""
        return int(self.mics.shape[0])

    @property
    def n_src(self) -> int:
        """Number of talkers."""
        return int(self.images.shape[0])


def _pink(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Draw complex pink-noise spectra (power ~ 1/f) on an rfft grid, last axis = bins."""
    spec = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    k = np.arange(shape[-1], dtype=np.float64)
    k[0] = 1.0
    spec = spec / np.sqrt(k)
    spec[..., 0] = 0.0
    return spec


def diffuse_noise(
    mic_positions: np.ndarray, n_samples: int, srate: int, *, seed: int = 0, c: float = _C
) -> np.ndarray:
    """Spherically isotropic (diffuse) pink noise at a set of microphones.

    Independent pink spectra are mixed per frequency so that the coherence
    between microphones i and j is the free-field diffuse-field coherence
    ``sinc(2 f d_ij / c)`` (Habets & Gannot's method, with an eigen-
    decomposition instead of Cholesky because closely spaced microphones make
    the coherence matrix nearly singular at low frequencies).

    Parameters
    ----------
    mic_positions : ndarray, shape (3, n_mic)
        Microphone positions, m.
    n_samples : int
        Length of the noise, samples.
    srate : int
        Sampling rate, Hz.
    seed : int
        Seed of the random generator.
    c : float
        Speed of sound, m/s.

    Returns
    -------
    noise : ndarray, shape (n_mic, n_samples)
        Noise with unit mean power per microphone.
    """
    pos = np.asarray(mic_positions, dtype=np.float64)
    n_mic = pos.shape[1]
    rng = np.random.default_rng(seed)
    n_bins = n_samples // 2 + 1
    freqs = np.fft.rfftfreq(n_samples, 1.0 / srate)
    dist = np.linalg.norm(pos[:, :, None] - pos[:, None, :], axis=0)  # (M, M)
    gamma = np.sinc(2.0 * freqs[:, None, None] * dist[None] / c)  # (F, M, M)
    eigval, eigvec = np.linalg.eigh(gamma)
    mix = eigvec * np.sqrt(np.clip(eigval, 0.0, None))[:, None, :]  # (F, M, M)
    spec = _pink(rng, (n_mic, n_bins))  # (M, F)
    mixed = np.einsum("fij,jf->if", mix, spec)
    noise = np.fft.irfft(mixed, n=n_samples, axis=-1)
    return noise / np.sqrt(np.mean(noise**2))


def _check_scene_args(
    sources: list[np.ndarray],
    azimuths_deg: list[float],
    srate: int,
    distance_m: float,
    rt60_s: float | None,
    room_dim: tuple[float, float, float],
    snr_db: float | None,
) -> list[np.ndarray]:
    if len(sources) == 0:
        raise SeparateError("sources is empty.", "Give at least one talker signal.")
    if len(azimuths_deg) != len(sources):
        raise SeparateError(
            f"azimuths_deg has {len(azimuths_deg)} entries for {len(sources)} sources.",
            "Give one azimuth per talker.",
        )
    out = []
    for i, s in enumerate(sources):
        arr = np.asarray(s, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise SeparateError(
                f"sources[{i}] must be a finite 1-D signal, got shape {arr.shape}.",
                "Pass mono audio as a 1-D array.",
            )
        out.append(arr)
    for i, az in enumerate(azimuths_deg):
        if not np.isfinite(az) or not -180.0 <= az <= 180.0:
            raise SeparateError(
                f"azimuths_deg[{i}] = {az} is outside [-180, 180] deg.",
                "Use 0 = ahead, positive = left, within +/-180 deg.",
            )
    if srate <= 0:
        raise SeparateError(f"srate = {srate} must be positive.", "Give the rate in Hz.")
    if not distance_m > 0:
        raise SeparateError(f"distance_m = {distance_m} must be positive.", "Give it in m.")
    if rt60_s is not None and not rt60_s > 0:
        raise SeparateError(
            f"rt60_s = {rt60_s} must be positive.", "Use None for an anechoic room."
        )
    if snr_db is not None and not np.isfinite(snr_db):
        raise SeparateError(f"snr_db = {snr_db} is not finite.", "Use None for no noise.")
    if len(room_dim) != 3 or min(room_dim) <= 2 * _WALL_MARGIN_M:
        raise SeparateError(
            f"room_dim = {room_dim} is not a 3-D room.", "Give (length, width, height) in m."
        )
    return out


def _listener(room_dim: np.ndarray) -> np.ndarray:
    """Return the head centre: 40 % along x, centred in y, at ear height, m."""
    return np.array([0.4 * room_dim[0], 0.5 * room_dim[1], EAR_HEIGHT_M])


def simulate_scene(
    sources: list[np.ndarray],
    azimuths_deg: list[float],
    srate: int,
    *,
    distance_m: float = 1.5,
    rt60_s: float | None = 0.3,
    room_dim: tuple[float, float, float] = (6.0, 5.0, 3.0),
    snr_db: float | None = 20.0,
    seed: int = 0,
) -> SpatialScene:
    """Simulate talkers around a listener wearing :func:`hearing_aid_array`.

    The listener stands at 40 % of the room length, centred in width, ears at
    1.2 m, facing +x. Each talker is placed at ``distance_m`` from the head
    centre in the horizontal plane at its azimuth. Room responses come from
    the pyroomacoustics image-source model: with ``rt60_s`` the wall
    absorption and reflection order follow Sabine's formula
    (``pyroomacoustics.inverse_sabine``); ``rt60_s=None`` keeps only the
    direct path (anechoic). The noise is diffuse pink noise
    (:func:`diffuse_noise`), scaled so that the power of the summed talker
    images at the reference microphone over the noise power is ``snr_db``.

    Parameters
    ----------
    sources : list of ndarray, each shape (n_k,)
        Dry talker signals at ``srate``.
    azimuths_deg : list of float
        One direction per talker, deg, in [-180, 180] (0 = ahead, positive = left).
    srate : int
        Sampling rate, Hz.
    distance_m : float
        Talker distance from the head centre, m.
    rt60_s : float or None
        Reverberation time, s; None for an anechoic room.
    room_dim : tuple of float
        Room length (x), width (y) and height (z), m.
    snr_db : float or None
        Talkers-to-noise ratio at the reference microphone, dB; None for no noise.
    seed : int
        Seed of the noise.

    Returns
    -------
    scene : SpatialScene
        ``n_samples`` is the longest source plus the room response length minus one.

    Raises
    ------
    SeparateError
        On bad arguments (naming the field), a talker outside the room, or
        when pyroomacoustics is not installed.
    """
    srcs = _check_scene_args(sources, azimuths_deg, srate, distance_m, rt60_s, room_dim, snr_db)
    try:
        import pyroomacoustics as pra
    except ImportError as exc:
        raise SeparateError(
            "pyroomacoustics is not installed.", "pip install pyroomacoustics"
        ) from exc

    dims = np.asarray(room_dim, dtype=np.float64)
    centre = _listener(dims)
    mic_pos = hearing_aid_array() + centre[:, None]
    src_pos = []
    for i, az in enumerate(azimuths_deg):
        rad = np.deg2rad(az)
        p = centre + distance_m * np.array([np.cos(rad), np.sin(rad), 0.0])
        if np.any(p < _WALL_MARGIN_M) or np.any(p > dims - _WALL_MARGIN_M):
            raise SeparateError(
                f"Talker {i} at azimuth {az} deg and distance_m = {distance_m} falls outside "
                f"the room room_dim = {tuple(room_dim)} (position {np.round(p, 2).tolist()}).",
                "Use a smaller distance_m or a larger room_dim.",
            )
        src_pos.append(p)

    if rt60_s is None:
        room = pra.ShoeBox(dims, fs=srate, max_order=0)
    else:
        e_abs, max_order = pra.inverse_sabine(rt60_s, dims)
        room = pra.ShoeBox(dims, fs=srate, materials=pra.Material(e_abs), max_order=max_order)
    for p, s in zip(src_pos, srcs, strict=True):
        room.add_source(p, signal=s)
    room.add_microphone_array(mic_pos)
    premix = np.asarray(room.simulate(return_premix=True), dtype=np.float64)
    # premix: (n_src, n_mic, n_samples)
    n_mic, n = premix.shape[1], premix.shape[2]
    if snr_db is None:
        noise = np.zeros((n_mic, n))
    else:
        speech_pow = float(np.mean(premix.sum(axis=0)[0] ** 2))
        noise = diffuse_noise(mic_pos, n, srate, seed=seed)
        noise *= np.sqrt(speech_pow / 10 ** (snr_db / 10) / np.mean(noise[0] ** 2))
    mics = premix.sum(axis=0) + noise
    logger.debug(
        "Simulated scene: %d talkers at %s deg, rt60 %s s, snr %s dB, %d samples.",
        len(srcs),
        list(azimuths_deg),
        rt60_s,
        snr_db,
        n,
    )
    return SpatialScene(
        mics=mics,
        images=premix,
        noise=noise,
        mic_positions=mic_pos,
        azimuths_deg=np.asarray(azimuths_deg, dtype=np.float64),
        srate=int(srate),
    )
