"""Endless batch streams whose content is a pure function of (seed, position).

A search run alternates weight and architecture steps and may be killed at any step. To resume
bit-identically it must see the same batches, with the same augmentations, as the run it
continues, whatever the number of loader workers. So nothing here depends on mutable RNG
state: epoch e's order comes from a generator seeded with hash(seed, e), each sample gets
its own seed drawn alongside, and the dataset wrapper seeds torch's RNG with it right before
the sample's transform runs.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from archsearch.errors import DataError
from archsearch.seeds import hashed_seed


def _epoch_seed(seed: int, epoch: int) -> int:
    return hashed_seed("archsearch", seed, epoch)


class SeededDataset(Dataset):
    """Wraps a dataset so that item `(index, sample_seed)` is transformed under that seed.

    The caller's CPU RNG state is restored afterwards (only the CPU generator is touched:
    torch.manual_seed would also reseed CUDA). `__getitems__` lets the DataLoader fetch a
    whole batch under one save/restore.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[Any]:
        items = []
        with torch.random.fork_rng(devices=[]):
            for index, sample_seed in keys:
                torch.default_generator.manual_seed(sample_seed)
                items.append(self.dataset[index])
        return items


class BatchStream:
    """Endless, seeded, resumable stream of batches over one index subset.

    With `world` > 1 the stream of rank r yields its contiguous slice of every global batch, and
    `position` still counts global batches, so a run resumes with any number of processes.
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: Sequence[int],
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
        rank: int = 0,
        world: int = 1,
    ):
        if batch_size < 1:
            raise DataError(f"batch size must be positive, got {batch_size}")
        if batch_size % world:
            raise DataError(f"the batch size {batch_size} must be divisible by the number of processes {world}")
        if world > 1 and not drop_last:
            raise DataError("a stream split over processes needs drop_last (every rank takes the same steps)")
        self.rank, self.world = rank, world
        self.dataset = SeededDataset(dataset)
        self.indices = torch.as_tensor(list(indices), dtype=torch.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        n = len(self.indices)
        self.batches_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
        if self.batches_per_epoch == 0:
            raise DataError(
                f"a split of {n} images cannot fill one batch of {batch_size}; "
                "use a smaller batch size or more data"
            )
        self._position = 0
        self._batches: Optional[Iterator[Any]] = None

    @property
    def position(self) -> int:
        """Number of batches drawn so far, across epochs."""
        return self._position

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to."""
        return self._position // self.batches_per_epoch

    def seek(self, position: int) -> None:
        """Continue as if `position` batches had been drawn; nothing is loaded until next()."""
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}")
        self._position = position
        self._batches = None

    def epoch_plan(self, epoch: int) -> tuple[Tensor, Tensor]:
        """Dataset indices in epoch order and the seed of each sample's augmentation."""
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        order = torch.randperm(len(self.indices), generator=gen)
        sample_seeds = torch.randint(0, 2**62, (len(self.indices),), generator=gen)
        return self.indices[order], sample_seeds

    def _open(self) -> Iterator[Any]:
        """A loader over the rest of the current epoch, starting at the current position."""
        order, sample_seeds = self.epoch_plan(self.epoch)
        start = (self._position % self.batches_per_epoch) * self.batch_size
        stop = min(self.batches_per_epoch * self.batch_size, len(order))
        local = self.batch_size // self.world
        picked = [i for j in range(start, stop, self.batch_size)  # this rank's slice of each global batch
                  for i in range(j + self.rank * local, min(j + (self.rank + 1) * local, stop))]
        keys = [(int(order[i]), int(sample_seeds[i])) for i in picked]
        loader = DataLoader(
            self.dataset,
            batch_size=local,
            sampler=keys,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            # An explicit generator keeps the loader from drawing worker seeds from the
            # caller's global RNG; the seeds it draws do not affect the batches.
            generator=torch.Generator().manual_seed(0),
        )
        return iter(loader)

    def next(self) -> tuple[Tensor, Tensor]:
        """The next batch (images, labels); a new epoch starts with a new permutation."""
        if self._batches is None:
            self._batches = self._open()
        images, labels = next(self._batches)
        self._position += 1
        if self._position % self.batches_per_epoch == 0:
            self._batches = None  # shuts the workers down; the next epoch opens a new loader
        return images, labels

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        while True:
            yield self.next()

    def __repr__(self) -> str:
        return (
            f"BatchStream(n={len(self.indices)}, batch_size={self.batch_size}, seed={self.seed}, "
            f"position={self._position}, batches_per_epoch={self.batches_per_epoch})"
        )
