"""Channel labels and positions for the simulated EEG cap.

Up to 85 channels get 10-10 labels on an approximate spherical head
(10 % steps of the nasion-inion arc in an azimuthal-equidistant layout); larger
caps use geodesic-net style labels ``E1..En`` spread evenly over the upper
head (a Fibonacci lattice), as high-density nets do.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HEAD_RADIUS_MM", "montage"]

HEAD_RADIUS_MM = 95.0

# Standard 10-20 first, then the 10-10 additions, so every cap keeps the classics.
_PRIORITY = (
    "Fp1 Fp2 F7 F3 Fz F4 F8 T7 C3 Cz C4 T8 P7 P3 Pz P4 P8 O1 O2 Fpz Oz "
    "AF3 AF4 FC1 FC2 FC5 FC6 CP1 CP2 CP5 CP6 PO3 PO4 FT9 FT10 TP9 TP10 "
    "F1 F2 F5 F6 C1 C2 C5 C6 P1 P2 P5 P6 AFz FCz CPz POz PO7 PO8 FT7 FT8 TP7 TP8 "
    "AF7 AF8 F9 F10 P9 P10 PO9 PO10 T9 T10 Iz "
    "FC3 FC4 CP3 CP4 AF1 AF2 AF5 AF6 PO1 PO2 PO5 PO6 O9 O10"
).split()
_ROWS = {"Fp": 0.1, "AF": 0.2, "F": 0.3, "FC": 0.4, "FT": 0.4, "C": 0.5, "T": 0.5}
_ROWS |= {"CP": 0.6, "TP": 0.6, "P": 0.7, "PO": 0.8, "O": 0.9, "I": 1.0}


def _position(label: str) -> np.ndarray:
    row = label.rstrip("0123456789z")
    col = label[len(row) :]
    # azimuthal-equidistant layout: 0.5 from the vertex = the equator (Fpz-T7-Oz circle)
    y = 0.5 - _ROWS[row]  # front positive
    n = 0 if col == "z" else int(col)
    side = -1.0 if n % 2 else 1.0  # odd = left
    x = side * ((n + 1) // 2) / 4.0 * np.sqrt(max(0.25 - y**2, 0.0))
    if row in ("Fp", "O", "I") and n:
        x = side * 0.4 * np.sin(np.deg2rad(18.0 * ((n + 1) // 2)))
    theta = np.pi * np.hypot(x, y)
    az = np.arctan2(y, x)
    return np.array([np.sin(theta) * np.cos(az), np.sin(theta) * np.sin(az), np.cos(theta)])


def montage(n_channels: int) -> tuple[list[str], np.ndarray]:
    """Labels and positions of an ``n_channels`` cap.

    Parameters
    ----------
    n_channels : int
        Number of EEG channels.

    Returns
    -------
    labels : list of str, length n_channels
    positions : ndarray, shape (n_channels, 3)
        Unit vectors (x right, y front, z up); multiply by
        :data:`HEAD_RADIUS_MM` for millimetres.
    """
    if n_channels <= len(_PRIORITY):
        labels = list(_PRIORITY[:n_channels])
        return labels, np.stack([_position(lb) for lb in labels])
    i = np.arange(n_channels) + 0.5
    z = 1.0 - 1.2 * i / n_channels  # from the vertex down to ~ -0.2 (below the ears)
    r = np.sqrt(1.0 - z**2)
    golden = np.pi * (3.0 - np.sqrt(5.0))
    pos = np.stack([r * np.sin(golden * i), r * np.cos(golden * i), z], axis=1)
    return [f"E{k + 1}" for k in range(n_channels)], pos
