"""Deterministic, resumable batch samplers (usable as ``torch.utils.data.DataLoader(batch_sampler=...)``).

Each epoch's order is a pure function of ``(seed, epoch)``, so a run resumed from
``state_dict()`` replays exactly the batches the interrupted run had not consumed yet.

State semantics (both samplers):
    * ``position`` counts batches of the current epoch already handed out by ``__iter__``;
      iteration resumes there. A completed epoch is saved as ``(epoch + 1, 0)``.
    * ``set_epoch(e)`` switches epoch and rewinds to batch 0 only when ``e`` differs from the current
      epoch, so ``load_state_dict(...)`` followed by the usual ``set_epoch(start_epoch)`` keeps the
      resume point. Iterating a finished epoch again (without ``set_epoch``) replays it.
    * A DataLoader with workers prefetches batches ahead of training; pass the number of batches
      the trainer actually consumed as ``state_dict(consumed=n)`` in that case.
"""
from __future__ import annotations

import zlib
from typing import Any, Iterator, Sequence

import numpy as np

from tvreid_sdk.errors import ConfigError


class _ResumableBatchSampler:
    """Shared epoch/position bookkeeping; subclasses implement :meth:`_epoch_batches`."""

    kind = "base"

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    # -- subclass API -------------------------------------------------------------------------
    def _epoch_batches(self, rng: np.random.Generator) -> list[list[int]]:
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- public API ---------------------------------------------------------------------------
    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """All batches of ``epoch`` (default: the current one), regardless of position."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is None or self._cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])  # independent stream per (seed, epoch)
            self._cache = (epoch, self._epoch_batches(rng))
        return self._cache[1]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate; rewinds to its first batch only if the epoch changes."""
        if int(epoch) < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch}")
        if int(epoch) != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        if self.position >= len(batches):
            self.position = 0  # replay a finished epoch
        while self.position < len(batches):
            batch = batches[self.position]
            self.position += 1  # counted as consumed once handed out
            yield list(batch)

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """``{"kind", "seed", "epoch", "position", "config"}``; a finished epoch becomes ``(epoch+1, 0)``.

        Args:
            consumed: batches of the current epoch the trainer really used (when a DataLoader
                prefetches ahead of it); defaults to the number handed out.
        """
        position = self.position if consumed is None else int(consumed)
        if not 0 <= position <= len(self):
            raise ConfigError(f"consumed must be in 0..{len(self)}, got {consumed}")
        epoch = self.epoch
        if position == len(self):
            epoch, position = epoch + 1, 0
        return {"kind": self.kind, "seed": self.seed, "epoch": epoch, "position": position,
                "config": self._config()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore epoch and position; the sampler must be built with the same data and settings."""
        try:
            kind, seed, epoch, position, config = (state[k] for k in ("kind", "seed", "epoch", "position", "config"))
        except (KeyError, TypeError):
            raise ConfigError(f"not a state dict of {type(self).__name__}: {state!r}") from None
        if kind != self.kind or int(seed) != self.seed or config != self._config():
            raise ConfigError(f"{type(self).__name__} state was saved for kind={kind!r} seed={seed} config={config}, "
                              f"but this sampler has kind={self.kind!r} seed={self.seed} config={self._config()}; "
                              f"resume with the same dataset and sampler settings.")
        self.epoch, self.position = int(epoch), int(position)
        if not 0 <= self.position <= len(self):
            raise ConfigError(f"saved position {position} is outside 0..{len(self)} for epoch {epoch}")


class RandomBatchSampler(_ResumableBatchSampler):
    """Shuffle all items each epoch and cut them into batches (DMCA's ``--sampler random``).

    Args:
        num_items: dataset length.
        batch_size: items per batch.
        seed: base seed; epoch ``e`` uses the permutation drawn from ``(seed, e)``.
        drop_last: drop the final incomplete batch (default True, as contrastive losses want full batches).
    """

    kind = "shuffled"

    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, drop_last: bool = True):
        if num_items < 1 or batch_size < 1:
            raise ConfigError(f"num_items and batch_size must be >= 1, got {num_items} and {batch_size}")
        if drop_last and num_items < batch_size:
            raise ConfigError(f"batch_size {batch_size} exceeds the {num_items} items with drop_last=True; "
                              f"lower batch_size or set drop_last=False.")
        super().__init__(seed)
        self.num_items, self.batch_size, self.drop_last = int(num_items), int(batch_size), bool(drop_last)

    def _config(self) -> dict[str, Any]:
        return {"num_items": self.num_items, "batch_size": self.batch_size, "drop_last": self.drop_last}

    def _epoch_batches(self, rng: np.random.Generator) -> list[list[int]]:
        order = rng.permutation(self.num_items)  # [N]
        stop = self.num_items - self.num_items % self.batch_size if self.drop_last else self.num_items
        return [order[i:i + self.batch_size].tolist() for i in range(0, stop, self.batch_size)]


class IdentityBalancedSampler(_ResumableBatchSampler):
    """P identities x K tracklets per batch (the RandomIdentitySampler scheme of DPR/TF-CLIP).

    Per epoch: every identity's tracklet indices are shuffled (identities with fewer than K are
    drawn with replacement up to K) and cut into chunks of K (a remainder < K is dropped); then
    batches are formed by repeatedly taking one chunk from each of P distinct random identities that
    still have chunks, until fewer than P such identities remain. Batch ``b`` lists identity 1's K
    indices, then identity 2's, and so on.

    Args:
        pids: person label of every dataset item (``dataset.train.pids``).
        num_identities: P, identities per batch.
        num_instances: K, tracklets per identity per batch.
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
    """

    kind = "identity_balanced"

    def __init__(self, pids: Sequence[int] | np.ndarray, num_identities: int, num_instances: int, seed: int = 0):
        pids = np.asarray(pids).reshape(-1)
        P, K = int(num_identities), int(num_instances)
        if P < 1 or K < 1:
            raise ConfigError(f"num_identities (P) and num_instances (K) must be >= 1, got P={P} K={K}")
        ids, inverse = np.unique(pids, return_inverse=True)
        if len(ids) < P:
            raise ConfigError(f"num_identities={P} per batch but the data has only {len(ids)} identities; lower it.")
        super().__init__(seed)
        self.P, self.K = int(P), int(K)
        self.num_items = len(pids)
        order = np.argsort(inverse, kind="stable")
        self._groups = np.split(order, np.cumsum(np.bincount(inverse))[:-1])  # item indices per identity
        self._fingerprint = zlib.crc32(inverse.astype(np.int64).tobytes())  # detects resuming on other data

    def _config(self) -> dict[str, Any]:
        return {"num_items": self.num_items, "num_ids": len(self._groups), "P": self.P, "K": self.K,
                "fingerprint": self._fingerprint}

    def _epoch_batches(self, rng: np.random.Generator) -> list[list[int]]:
        chunks: list[list[np.ndarray]] = []
        for group in self._groups:
            picks = rng.choice(group, size=self.K, replace=True) if len(group) < self.K else rng.permutation(group)
            usable = len(picks) - len(picks) % self.K
            chunks.append([picks[i:i + self.K] for i in range(0, usable, self.K)])
        remaining = np.array([len(c) for c in chunks])  # chunks left per identity
        batches = []
        while np.count_nonzero(remaining) >= self.P:
            chosen = rng.choice(np.flatnonzero(remaining), size=self.P, replace=False)
            batch = []
            for ident in chosen.tolist():
                remaining[ident] -= 1
                batch.extend(chunks[ident][remaining[ident]].tolist())  # pop from the end
            batches.append(batch)
        return batches
