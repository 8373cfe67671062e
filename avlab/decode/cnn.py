"""Deep attention decoder: a small match-mismatch CNN (PyTorch, the ``deep`` extra).

The network scores how well an EEG window matches a speech envelope. The EEG
goes through a spatial 1×1 convolution and a stack of dilated temporal
convolutions; each talker's envelope goes through one shared stack of the same
shape. The cosine similarities (over time) of every EEG feature map with every
envelope feature map form a ``n_filters × n_filters`` matrix, and a linear layer
maps it to a score. The decision is

``logit = score(eeg, env_a) − score(eeg, env_b)``,

antisymmetric in the talkers by construction: swapping them negates the logit
exactly, so the model cannot learn a side or a voice (which the simulator ties to
the attended talker within a subject), only which envelope the EEG follows.

Every window (EEG per channel, envelopes) is z-scored over its own samples, and
the similarities are averages over time, so the decoder accepts windows of any
length at least one receptive field long.

PyTorch is imported only when a CNN is fitted or restored, so ``import
avlab.decode`` works without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

from avlab._logging import logger
from avlab.decode.base import AttentionDecoder, DecodeError, ModelMismatchError, window_bounds

__all__ = ["CNNDecoder"]


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise DecodeError(
            "CNNDecoder needs PyTorch, which is not installed.",
            hint="pip install 'avlab[deep]'",
        ) from exc
    return torch


@cache
def _net_class() -> Any:
    """Return the network class (defined once torch is imported)."""
    torch = _import_torch()
    nn = torch.nn

    def _zscore(x: Any) -> Any:
        x = x - x.mean(dim=-1, keepdim=True)
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + 1e-30)

    def _unit(x: Any) -> Any:
        # centre over time, then unit norm: similarities are Pearson correlations. Without
        # the centring, a constant EEG embedding (the conv biases after ReLU) would let the
        # score depend on the envelope alone, i.e. learn "which talker" instead of "which
        # talker the EEG follows" - a shortcut that scored below chance at low SNR.
        x = x - x.mean(dim=-1, keepdim=True)
        return nn.functional.normalize(x, dim=-1)

    def _stack(c_in: int, n_filters: int, n_layers: int, kernel: int) -> Any:
        layers: list[Any] = []
        for i in range(n_layers):
            layers += [nn.Conv1d(c_in, n_filters, kernel, dilation=kernel**i), nn.ReLU()]
            c_in = n_filters
        return nn.Sequential(*layers)

    class MatchMismatchNet(nn.Module):
        """EEG (B, C, T) and two envelopes (B, T) → logit that envelope a is attended."""

        def __init__(
            self, n_channels: int, n_spatial: int, n_filters: int, n_layers: int, kernel: int
        ) -> None:
            super().__init__()
            self.spatial = nn.Conv1d(n_channels, n_spatial, 1)
            self.eeg = _stack(n_spatial, n_filters, n_layers, kernel)
            self.env = _stack(1, n_filters, n_layers, kernel)  # shared by both talkers
            self.head = nn.Linear(n_filters * n_filters, 1)

        def _score(self, e: Any, s: Any) -> Any:
            s = _unit(self.env(_zscore(s)[:, None, :]))
            sim = torch.einsum("bct,bdt->bcd", e, s).flatten(1)  # Pearson correlations
            return self.head(sim).squeeze(1)

        def forward(self, eeg: Any, env_a: Any, env_b: Any) -> Any:
            e = _unit(self.eeg(self.spatial(_zscore(eeg))))
            # two separate calls on identical shapes: swapping a and b negates exactly
            return self._score(e, env_a) - self._score(e, env_b)

    return MatchMismatchNet


@contextmanager
def _torch_state(torch: Any, seed: int, n_threads: int, device: str) -> Iterator[None]:
    """Seeded, deterministic, n_threads; the caller's torch settings are restored after."""
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    if device != "cpu":
        # deterministic cuBLAS (torch refuses deterministic mode on CUDA without it)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    devices = [] if device == "cpu" else None
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(max(1, int(n_threads)))
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(det, warn_only=warn_only)
            torch.set_num_threads(threads)


def _batcher(
    torch: Any, trials: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], width: int, dev: str
) -> Callable[[Sequence[tuple[int, int]], np.ndarray], tuple[Any, ...]]:
    """Return ``batch(windows, flip) -> (eeg, env_a, env_b, y)`` over windows ``(trial, start)``.

    Windows are sliced from per-trial tensors (no copy of all windows in memory);
    where ``flip`` is True the talkers are swapped and the label ``y`` is 0.
    """
    data = [tuple(torch.from_numpy(v).to(dev) for v in trial) for trial in trials]

    def batch(windows: Sequence[tuple[int, int]], flip: np.ndarray) -> tuple[Any, ...]:
        xs = torch.stack([data[i][0][:, s : s + width] for i, s in windows])
        att = torch.stack([data[i][1][s : s + width] for i, s in windows])
        una = torch.stack([data[i][2][s : s + width] for i, s in windows])
        f = torch.from_numpy(flip).to(dev)[:, None]
        y = torch.from_numpy((~flip).astype(np.float32)).to(dev)
        return xs, torch.where(f, una, att), torch.where(f, att, una), y

    return batch


def _mean_loss(
    torch: Any,
    net: Any,
    lossf: Any,
    batch: Callable[[Sequence[tuple[int, int]], np.ndarray], tuple[Any, ...]],
    windows: Sequence[tuple[int, int]],
    bs: int,
) -> float:
    """Mean loss over windows, attended talker first (the held-out loss)."""
    net.eval()
    total = 0.0
    with torch.no_grad():
        for k in range(0, len(windows), bs):
            chunk = windows[k : k + bs]
            xs, ea, eb, y = batch(chunk, np.zeros(len(chunk), dtype=bool))
            total += float(lossf(net(xs, ea, eb), y)) * len(chunk)
    return total / len(windows)


class CNNDecoder(AttentionDecoder):
    """Match-mismatch CNN: decide which of two envelopes the EEG follows.

    Training windows of ``window_s`` s, every ``hop_s`` s, are cut from the training
    trials only; the talker order is drawn at random per window. Training stops
    early when the loss on a held-out training *group* has not improved for
    ``patience`` epochs, and the weights of the best epoch are kept (with a single
    group, all ``max_epochs`` are run on it).

    Parameters
    ----------
    window_s : float
        Training window length, s.
    hop_s : float
        Step between training windows, s.
    max_epochs : int
        Most passes over the training windows.
    batch_size : int
        Windows per optimiser step (and per scoring batch).
    lr : float
        Adam learning rate.
    n_spatial : int
        Spatial filters (1×1 convolution over channels).
    n_filters : int
        Feature maps of each dilated temporal convolution.
    n_layers : int
        Dilated convolutions per branch; dilation ``kernel**i``.
    kernel : int
        Temporal kernel size, samples. The receptive field is
        ``1 + (kernel − 1)(kernel**n_layers − 1)/(kernel − 1)`` samples (27 by default).
    weight_decay : float
        Adam weight decay.
    patience : int
        Epochs without improvement of the held-out loss before stopping.
    sfreq : float
        Sampling rate of EEG and envelopes, Hz.
    seed : int
        Seed of the weights, the window order, the talker order and the held-out group.
    n_threads : int
        Torch CPU threads while fitting and scoring.
    device : str
        Torch device (``"cpu"``, ``"cuda"``).

    Attributes
    ----------
    net_ : torch.nn.Module
        The trained network (on the CPU between calls).
    n_channels_ : int
        EEG channels it was trained on.
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        Epoch (1-based) whose weights are kept.
    train_loss_ : ndarray, shape (n_epochs_,)
        Mean training loss per epoch.
    val_loss_ : ndarray, shape (n_epochs_,)
        Held-out group loss per epoch (empty with a single group).
    val_group_ : str
        The held-out group ("" with a single group).
    """

    def __init__(
        self,
        *,
        window_s: float = 5.0,
        hop_s: float = 2.5,
        max_epochs: int = 15,
        batch_size: int = 64,
        lr: float = 1e-3,
        n_spatial: int = 16,
        n_filters: int = 32,
        n_layers: int = 3,
        kernel: int = 3,
        weight_decay: float = 0.0,
        patience: int = 3,
        sfreq: float = 64.0,
        seed: int = 0,
        n_threads: int = 1,
        device: str = "cpu",
    ) -> None:
        self.window_s = window_s
        self.hop_s = hop_s
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_spatial = n_spatial
        self.n_filters = n_filters
        self.n_layers = n_layers
        self.kernel = kernel
        self.weight_decay = weight_decay
        self.patience = patience
        self.sfreq = sfreq
        self.seed = seed
        self.n_threads = n_threads
        self.device = device

    @property
    def receptive_field(self) -> int:
        """Samples one network output sees (the shortest usable window)."""
        return 1 + (self.kernel - 1) * sum(self.kernel**i for i in range(self.n_layers))

    def _new_net(self, n_channels: int) -> Any:
        net = _net_class()(n_channels, self.n_spatial, self.n_filters, self.n_layers, self.kernel)
        return net.to(self.device)

    def _check(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray] | None,
        what: str,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if eeg is None or env_b is None:
            raise DecodeError(
                f"CNNDecoder.{what} needs EEG and both talkers' envelopes.",
                hint="Pass eeg=[(n_channels, n_times)], attended and unattended envelopes.",
            )
        if not (len(eeg) == len(env_a) == len(env_b)) or not eeg:
            raise DecodeError(
                f"CNNDecoder.{what}: {len(eeg)} EEG arrays, {len(env_a)} and {len(env_b)} "
                "envelopes.",
                hint="Give one EEG array and one envelope per talker for every trial.",
            )
        out = []
        n_ch = None
        for i, (x, a, b) in enumerate(zip(eeg, env_a, env_b, strict=True)):
            x = np.asarray(x, dtype=np.float32)
            a = np.asarray(a, dtype=np.float32).ravel()
            b = np.asarray(b, dtype=np.float32).ravel()
            if x.ndim != 2 or a.size != x.shape[1] or b.size != x.shape[1]:
                raise DecodeError(
                    f"CNNDecoder.{what}: trial {i} has EEG {x.shape} and envelopes of "
                    f"{a.size} and {b.size} samples.",
                    hint="EEG is (n_channels, n_times); envelopes (n_times,) at the same rate.",
                )
            if n_ch is not None and x.shape[0] != n_ch:
                raise DecodeError(
                    f"CNNDecoder.{what}: trial {i} has {x.shape[0]} channels, trial 0 {n_ch}.",
                    hint="Use the same channels in every trial.",
                )
            n_ch = x.shape[0]
            out.append((x, a, b))
        return out

    # -- fitting -------------------------------------------------------------------
    def fit(
        self,
        eeg: Sequence[np.ndarray] | None,
        attended: Sequence[np.ndarray],
        unattended: Sequence[np.ndarray] | None = None,
        *,
        gaze: Sequence[np.ndarray] | None = None,
        groups: Sequence[str] | None = None,
        prepared: Sequence[Any] | None = None,
    ) -> CNNDecoder:
        """Train on windows of the training trials, with early stopping on a held-out group.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times)
            EEG per trial.
        attended, unattended : list of ndarray, shape (n_times,)
            Envelopes of the attended and unattended talker per trial.
        gaze, prepared
            Ignored.
        groups : list of str | None
            Trial groups; one group is held out for early stopping (default: each
            trial its own group).

        Returns
        -------
        self : CNNDecoder
        """
        torch = _import_torch()
        trials = self._check(eeg, attended, unattended, "fit")
        n = len(trials)
        groups = [str(i) for i in range(n)] if groups is None else [str(g) for g in groups]
        if len(groups) != n:
            raise DecodeError(
                f"CNNDecoder.fit: {len(groups)} groups for {n} trials.",
                hint="Give one group label per trial.",
            )
        width = int(round(self.window_s * self.sfreq))
        hop = max(1, int(round(self.hop_s * self.sfreq)))
        if width < self.receptive_field:
            raise DecodeError(
                f"CNNDecoder: training window {self.window_s:g} s is shorter than the "
                f"receptive field ({self.receptive_field} samples).",
                hint="Use a longer window_s.",
            )
        rng = np.random.default_rng(self.seed)
        uniq = sorted(set(groups))
        val_group = uniq[int(rng.integers(len(uniq)))] if len(uniq) > 1 else ""
        train_w, val_w = [], []
        for i, (x, _, _) in enumerate(trials):
            for s in range(0, x.shape[1] - width + 1, hop):
                (val_w if groups[i] == val_group else train_w).append((i, s))
        if not train_w:
            raise DecodeError(
                f"CNNDecoder.fit: no training window of {self.window_s:g} s fits in the trials.",
                hint="Use a shorter window_s or longer trials.",
            )
        dev = self.device
        batch = _batcher(torch, trials, width, dev)
        n_ch = trials[0][0].shape[0]
        bs = max(1, int(self.batch_size))
        train_loss: list[float] = []
        val_loss: list[float] = []
        with _torch_state(torch, int(self.seed), self.n_threads, dev):
            net = self._new_net(n_ch)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            lossf = torch.nn.BCEWithLogitsLoss()
            best, best_epoch, best_state, bad = np.inf, 0, None, 0
            for epoch in range(1, int(self.max_epochs) + 1):
                net.train()
                order = rng.permutation(len(train_w))
                total = 0.0
                for k in range(0, len(order), bs):
                    idx = order[k : k + bs]
                    # talker order drawn per window (the loss is the same either way: the
                    # logit is antisymmetric; kept so no code path depends on that)
                    xs, ea, eb, y = batch([train_w[j] for j in idx], rng.random(idx.size) < 0.5)
                    opt.zero_grad()
                    loss = lossf(net(xs, ea, eb), y)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * idx.size
                train_loss.append(total / len(order))
                if not val_w:
                    best_epoch = epoch
                    continue
                val_loss.append(_mean_loss(torch, net, lossf, batch, val_w, bs))
                msg = "cnn epoch %d: loss %.4f, held out %.4f"
                logger.debug(msg, epoch, train_loss[-1], val_loss[-1])
                if val_loss[-1] < best:
                    best, best_epoch, bad = val_loss[-1], epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
            if best_state is not None:
                net.load_state_dict(best_state)
        net.eval()
        self.net_ = net.to("cpu")
        self.n_channels_ = int(n_ch)
        self.n_epochs_ = len(train_loss)
        self.best_epoch_ = int(best_epoch)
        self.train_loss_ = np.asarray(train_loss)
        self.val_loss_ = np.asarray(val_loss)
        self.val_group_ = val_group
        logger.info(
            "cnn: %d training windows, %d held out (group %r), %d epochs, best %d",
            len(train_w),
            len(val_w),
            val_group,
            self.n_epochs_,
            self.best_epoch_,
        )
        return self

    def decision_function(
        self,
        eeg: Sequence[np.ndarray] | None,
        env_a: Sequence[np.ndarray],
        env_b: Sequence[np.ndarray],
        *,
        window_s: float,
        gaze: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Logit per decision window and trial; positive means talker a is attended.

        Parameters
        ----------
        eeg : list of ndarray, shape (n_channels, n_times)
        env_a, env_b : list of ndarray, shape (n_times,)
        window_s : float
            Decision window length, s (at least one receptive field).
        gaze
            Ignored.

        Returns
        -------
        scores : list of ndarray, shape (n_windows,)
            ``score(eeg, env_a) − score(eeg, env_b)``; swapping a and b negates it exactly.
        """
        torch = _import_torch()
        trials = self._check(eeg, env_a, env_b, "decision_function")
        if trials[0][0].shape[0] != self.n_channels_:
            raise ModelMismatchError(
                f"CNNDecoder was trained on {self.n_channels_} EEG channels, "
                f"the data has {trials[0][0].shape[0]}.",
                hint="Apply the model to data with the channels it was trained on.",
            )
        width = int(round(window_s * self.sfreq))
        if width < self.receptive_field:
            raise DecodeError(
                f"CNNDecoder: decision window {window_s:g} s ({width} samples) is shorter than "
                f"the receptive field ({self.receptive_field} samples).",
                hint="Use a longer decision window.",
            )
        dev = self.device
        bs = max(1, int(self.batch_size))
        out = []
        with _torch_state(torch, int(self.seed), self.n_threads, dev), torch.no_grad():
            net = self.net_.to(dev)
            net.eval()
            for x, a, b in trials:
                bounds = window_bounds(x.shape[1], self.sfreq, window_s)
                scores = []
                for k in range(0, len(bounds), bs):
                    st = bounds[k : k + bs, 0]
                    xs = torch.from_numpy(np.stack([x[:, s : s + width] for s in st])).to(dev)
                    ea = torch.from_numpy(np.stack([a[s : s + width] for s in st])).to(dev)
                    eb = torch.from_numpy(np.stack([b[s : s + width] for s in st])).to(dev)
                    scores.append(net(xs, ea, eb).cpu().numpy().astype(np.float64))
                out.append(np.concatenate(scores) if scores else np.zeros(0))
            self.net_ = net.to("cpu")
        return out

    # -- saving --------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Return the network weights (``net.<name>``) and the channel count."""
        out = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        out["n_channels"] = np.asarray(self.n_channels_, dtype=np.int64)
        out["best_epoch"] = np.asarray(self.best_epoch_, dtype=np.int64)
        return out

    def _set_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the network with the stored channel count and load the weights."""
        torch = _import_torch()
        n_ch = int(np.asarray(arrays["n_channels"]))
        with _torch_state(torch, int(self.seed), self.n_threads, "cpu"):
            net = _net_class()(n_ch, self.n_spatial, self.n_filters, self.n_layers, self.kernel)
        state = {
            k[len("net.") :]: torch.from_numpy(np.array(v))
            for k, v in arrays.items()
            if k.startswith("net.")
        }
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelMismatchError(
                f"saved CNN weights do not fit the network of these parameters: {exc}",
                hint="Load the model with the parameters it was saved with.",
            ) from exc
        net.eval()
        self.net_ = net
        self.n_channels_ = n_ch
        self.best_epoch_ = int(np.asarray(arrays.get("best_epoch", 0)))
