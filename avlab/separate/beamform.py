"""Classical multi-microphone baseline: beamformers steered to a direction.

The gaze tells which talker the listener attends; with the talker's azimuth a
beamformer on the hearing-aid array (:func:`avlab.separate.scenes.hearing_aid_array`)
keeps that direction and suppresses the others. :func:`direction_of` goes the
other way: it estimates the direction of a separated signal from the
microphones, so gaze can pick which separated talker to keep.

All steering uses a far-field, free-field model: a plane wave in the
horizontal plane, no head between the ears. Azimuth 0 deg is straight ahead
(+x), positive azimuths turn left (counter-clockwise seen from above).

The MVDR beamformer here is in fact its MPDR form: the spatial covariance is
that of the whole mixture, target included, because the noise-only covariance
is unknown in a real session. MPDR is as good as MVDR when the steering
vector is exact, but any mismatch (talker not exactly where the gaze points,
near-field, head shadow, reverberation, microphone gain errors) makes the
target look like interference, and MPDR then partly cancels it. Diagonal
loading (``loading`` times the mean microphone power added to the diagonal)
trades interference suppression for robustness to that mismatch.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import check_NOLA, istft, stft

from avlab.separate.inference import SeparateError

__all__ = ["steering_vector", "mvdr", "delay_and_sum", "direction_of"]

#: Speed of sound, m/s.
SPEED_OF_SOUND = 343.0


def _check_azimuth(azimuth_deg: float) -> float:
    az = float(azimuth_deg)
    if not np.isfinite(az) or not -180.0 <= az <= 180.0:
        raise SeparateError(
            f"azimuth_deg = {azimuth_deg} is outside [-180, 180] deg.",
            "Give the talker direction in deg: 0 = ahead, positive = left.",
        )
    return az


def _check_positions(mic_positions: np.ndarray, n_mic: int | None = None) -> np.ndarray:
    pos = np.asarray(mic_positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[0] != 3 or not np.all(np.isfinite(pos)):
        raise SeparateError(
            f"mic_positions must be a finite array of shape (3, n_mic), got {pos.shape}.",
            "Give one (x, y, z) column per microphone, in m.",
        )
    if n_mic is not None and pos.shape[1] != n_mic:
        raise SeparateError(
            f"mic_positions has {pos.shape[1]} microphones but mics has {n_mic} "
            f"(mic_positions shape {pos.shape}).",
            "Give one column of mic_positions per row of mics.",
        )
    return pos


def _check_mics(mics: np.ndarray, nfft: int) -> np.ndarray:
    x = np.asarray(mics, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.all(np.isfinite(x)):
        raise SeparateError(
            f"mics must be a finite array of shape (n_mic >= 2, n_samples), got {x.shape}.",
            "Pass one row per microphone.",
        )
    if x.shape[1] < nfft:
        raise SeparateError(
            f"mics has {x.shape[1]} samples, fewer than nfft = {nfft}.",
            "Pass a longer recording or a smaller nfft.",
        )
    return x


def _check_stft(nfft: int, hop: int, srate: int) -> None:
    if srate <= 0:
        raise SeparateError(f"srate = {srate} must be positive.", "Give the rate in Hz.")
    if nfft < 2 or not 0 < hop <= nfft or not check_NOLA("hann", nfft, nfft - hop):
        raise SeparateError(
            f"nfft = {nfft}, hop = {hop} do not give an invertible Hann STFT.",
            "Use e.g. nfft = 512, hop = 128 (hop a divisor of nfft, at most nfft / 2).",
        )


def steering_vector(
    freqs_hz: np.ndarray,
    mic_positions: np.ndarray,
    azimuth_deg: float,
    c: float = SPEED_OF_SOUND,
) -> np.ndarray:
    """Far-field free-field relative transfer function of a direction.

    A plane wave from azimuth ``theta`` (horizontal plane) reaches microphone
    m earlier than the origin by ``p_m . u / c``, with ``u = (cos theta,
    sin theta, 0)``. The vector is normalised to microphone 0, so its first
    entry is 1 and only position differences matter.

    Parameters
    ----------
    freqs_hz : ndarray, shape (n_freqs,)
        Frequencies, Hz.
    mic_positions : ndarray, shape (3, n_mic)
        Microphone positions, m (absolute or relative, only differences count).
    azimuth_deg : float
        Direction, deg in [-180, 180] (0 = ahead/+x, positive = left).
    c : float
        Speed of sound, m/s.

    Returns
    -------
    d : ndarray of complex, shape (n_freqs, n_mic)
        ``exp(2j pi f (p_m - p_0) . u / c)``, the transfer function to each
        microphone divided by that to microphone 0 (same sign convention as
        :func:`scipy.signal.stft`).
    """
    az = np.deg2rad(_check_azimuth(azimuth_deg))
    pos = _check_positions(mic_positions)
    f = np.asarray(freqs_hz, dtype=np.float64).reshape(-1)
    u = np.array([np.cos(az), np.sin(az), 0.0])
    lead_s = (pos - pos[:, :1]).T @ u / c  # (M,), s
    return np.exp(2j * np.pi * f[:, None] * lead_s[None, :])


def _stft(x: np.ndarray, srate: int, nfft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    f, _, spec = stft(x, fs=srate, window="hann", nperseg=nfft, noverlap=nfft - hop)
    return f, spec


def _istft(spec: np.ndarray, srate: int, nfft: int, hop: int, n: int) -> np.ndarray:
    _, y = istft(spec, fs=srate, window="hann", nperseg=nfft, noverlap=nfft - hop)
    out = np.zeros(n)
    m = min(n, y.shape[-1])
    out[:m] = y[:m]
    return out


def _prepare(
    mics: np.ndarray,
    srate: int,
    mic_positions: np.ndarray,
    azimuth_deg: float,
    nfft: int,
    hop: int,
    ref_mic: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check inputs; return mics, their STFT (M, F, T), steering (F, M) normalised to ref."""
    _check_stft(nfft, hop, srate)
    x = _check_mics(mics, nfft)
    pos = _check_positions(mic_positions, x.shape[0])
    if not 0 <= ref_mic < x.shape[0]:
        raise SeparateError(
            f"ref_mic = {ref_mic} is not a microphone index (0..{x.shape[0] - 1}).",
            "Pick the microphone whose image the output should match.",
        )
    freqs, spec = _stft(x, srate, nfft, hop)
    d = steering_vector(freqs, pos, azimuth_deg)
    d = d / d[:, ref_mic : ref_mic + 1]
    return x, spec, d


def mvdr(
    mics: np.ndarray,
    srate: int,
    mic_positions: np.ndarray,
    azimuth_deg: float,
    *,
    nfft: int = 512,
    hop: int = 128,
    loading: float = 1e-3,
    ref_mic: int = 0,
) -> np.ndarray:
    """MVDR (MPDR form) beamformer steered to an azimuth.

    Per STFT frequency f, with ``R(f)`` the spatial covariance of the whole
    mixture over the recording and ``d(f)`` the steering vector normalised to
    ``ref_mic``: ``w = (R + mu I)^-1 d / (d^H (R + mu I)^-1 d)``, ``mu =
    loading * trace(R) / M``. The distortionless constraint keeps a plane wave
    from ``azimuth_deg`` as it is at ``ref_mic``, so the output is aligned
    with (and scored against) the target's image at that microphone. Because
    ``R`` includes the target, steering mismatch makes MPDR cancel part of
    the target; ``loading`` limits that (larger = closer to delay-and-sum).

    Parameters
    ----------
    mics : ndarray, shape (n_mic, n_samples)
        Microphone signals.
    srate : int
        Sampling rate, Hz.
    mic_positions : ndarray, shape (3, n_mic)
        Microphone positions, m.
    azimuth_deg : float
        Direction to keep, deg in [-180, 180] (0 = ahead, positive = left).
    nfft : int
        STFT window (Hann) length, samples.
    hop : int
        STFT hop, samples.
    loading : float
        Diagonal loading relative to the mean microphone power (trace / M).
    ref_mic : int
        Microphone the output is aligned with.

    Returns
    -------
    y : ndarray, shape (n_samples,)
        Beamformer output.

    Raises
    ------
    SeparateError
        On a bad azimuth, mismatched ``mics``/``mic_positions`` shapes or STFT
        settings, naming the field.
    """
    if not np.isfinite(loading) or loading < 0:
        raise SeparateError(f"loading = {loading} must be >= 0.", "Use e.g. 1e-3.")
    x, spec, d = _prepare(mics, srate, mic_positions, azimuth_deg, nfft, hop, ref_mic)
    n_mic = x.shape[0]
    xf = np.moveaxis(spec, 0, 1)  # (F, M, T)
    cov = xf @ xf.conj().transpose(0, 2, 1) / xf.shape[-1]  # (F, M, M)
    tr = np.real(np.trace(cov, axis1=1, axis2=2))  # (F,)
    mu = loading * tr / n_mic
    mu = np.where(mu > 1e-12 * max(float(tr.max()), 1e-300), mu, 1.0)  # silent bins -> DS
    cov = cov + mu[:, None, None] * np.eye(n_mic)[None]
    rd = np.linalg.solve(cov, d[:, :, None])[:, :, 0]  # (F, M)
    w = rd / np.sum(d.conj() * rd, axis=1, keepdims=True)  # (F, M)
    out = np.einsum("fm,mft->ft", w.conj(), spec)
    return _istft(out, srate, nfft, hop, x.shape[1])


def delay_and_sum(
    mics: np.ndarray,
    srate: int,
    mic_positions: np.ndarray,
    azimuth_deg: float,
    *,
    nfft: int = 512,
    hop: int = 128,
    loading: float = 0.0,
    ref_mic: int = 0,
) -> np.ndarray:
    """Delay-and-sum beamformer steered to an azimuth, the simplest peer of :func:`mvdr`.

    ``w = d / M`` per STFT frequency: each microphone is aligned with
    ``ref_mic`` for a plane wave from ``azimuth_deg`` and the microphones are
    averaged. It does not adapt to the interferers.

    Parameters
    ----------
    mics : ndarray, shape (n_mic, n_samples)
        Microphone signals.
    srate : int
        Sampling rate, Hz.
    mic_positions : ndarray, shape (3, n_mic)
        Microphone positions, m.
    azimuth_deg : float
        Direction to keep, deg in [-180, 180] (0 = ahead, positive = left).
    nfft : int
        STFT window (Hann) length, samples.
    hop : int
        STFT hop, samples.
    loading : float
        Unused; accepted so that :func:`mvdr` and this function take the same
        arguments and can be swapped in a benchmark.
    ref_mic : int
        Microphone the output is aligned with.

    Returns
    -------
    y : ndarray, shape (n_samples,)
        Beamformer output.

    Raises
    ------
    SeparateError
        On a bad azimuth, mismatched ``mics``/``mic_positions`` shapes or STFT
        settings, naming the field.
    """
    x, spec, d = _prepare(mics, srate, mic_positions, azimuth_deg, nfft, hop, ref_mic)
    out = np.einsum("fm,mft->ft", d.conj() / x.shape[0], spec)
    return _istft(out, srate, nfft, hop, x.shape[1])


def direction_of(
    signal: np.ndarray,
    mics: np.ndarray,
    srate: int,
    mic_positions: np.ndarray,
    *,
    grid_deg: np.ndarray | None = None,
    nfft: int = 512,
    hop: int = 128,
    fmin_hz: float = 200.0,
    fmax_hz: float = 4000.0,
) -> float:
    """Azimuth from which a (separated) signal reaches the microphones.

    Per frequency f, the least-squares projection of each microphone's STFT
    on the signal's STFT gives the transfer function ``H_m(f) = sum_t X_m
    S* / sum_t |S|^2``; its relative transfer function ``H_m / H_0`` is
    compared with :func:`steering_vector` over the grid by the normalised
    match ``|d^H H| / (|d| |H|)`` (in [0, 1], independent of the reference
    microphone's gain), averaged over ``fmin_hz..fmax_hz`` with weights
    proportional to the signal power at f. The best-matching grid azimuth is
    returned. The signal may carry any gain, delay (within a window) or
    filtering relative to the microphones; a separated talker works as well
    as its clean image. With a left/right-symmetric array, directions in front
    and behind are hard to tell apart, hence the default grid -90..90 deg.

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
        The talker signal (e.g. one output of a separation network), at ``srate``,
        time-aligned with ``mics``.
    mics : ndarray, shape (n_mic, n_samples)
        Microphone signals.
    srate : int
        Sampling rate, Hz.
    mic_positions : ndarray, shape (3, n_mic)
        Microphone positions, m.
    grid_deg : ndarray, shape (n_dirs,) or None
        Candidate azimuths, deg; default ``np.arange(-90, 91, 2)``.
    nfft, hop : int
        STFT window length and hop, samples.
    fmin_hz, fmax_hz : float
        Frequency band used, Hz (capped at the Nyquist frequency).

    Returns
    -------
    azimuth_deg : float
        Estimated direction, deg (0 = ahead, positive = left).

    Raises
    ------
    SeparateError
        On mismatched shapes (naming ``signal``, ``mics`` or ``mic_positions``),
        a bad grid or a band with no frequencies.
    """
    grid = np.arange(-90, 91, 2) if grid_deg is None else np.asarray(grid_deg, dtype=float)
    if grid.ndim != 1 or grid.size == 0:
        raise SeparateError(f"grid_deg must be a 1-D array, got shape {grid.shape}.", "")
    _check_stft(nfft, hop, srate)
    x = _check_mics(mics, nfft)
    pos = _check_positions(mic_positions, x.shape[0])
    s = np.asarray(signal, dtype=np.float64)
    if s.shape != (x.shape[1],) or not np.all(np.isfinite(s)):
        raise SeparateError(
            f"signal must be finite with shape ({x.shape[1]},) like one row of mics, "
            f"got {s.shape}.",
            "Cut or pad the separated signal to the microphones' length.",
        )
    freqs, spec_x = _stft(x, srate, nfft, hop)  # (M, F, T)
    _, spec_s = _stft(s, srate, nfft, hop)  # (F, T)
    band = (freqs >= fmin_hz) & (freqs <= min(fmax_hz, srate / 2))
    if not band.any():
        raise SeparateError(
            f"No STFT frequency in fmin_hz..fmax_hz = {fmin_hz}..{fmax_hz} Hz.",
            "Widen the band or use a larger nfft.",
        )
    spec_x, spec_s, freqs = spec_x[:, band], spec_s[band], freqs[band]
    power = np.sum(np.abs(spec_s) ** 2, axis=-1)  # (F,)
    h = np.sum(spec_x * spec_s.conj()[None], axis=-1) / np.maximum(power, 1e-300)  # (M, F)
    h = h.T  # (F, M)
    h_norm = np.linalg.norm(h, axis=1)
    weights = power * (h_norm > 0)
    if not weights.sum() > 0:
        raise SeparateError("signal is silent in the analysed band.", "Pass a non-silent signal.")
    weights = weights / weights.sum()
    h_unit = h / np.maximum(h_norm, 1e-300)[:, None]
    n_mic = x.shape[0]
    scores = np.empty(grid.size)
    for i, az in enumerate(grid):
        d = steering_vector(freqs, pos, float(az)) / np.sqrt(n_mic)
        scores[i] = np.sum(weights * np.abs(np.sum(d.conj() * h_unit, axis=1)))
    return float(grid[int(np.argmax(scores))])
