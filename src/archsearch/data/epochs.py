"""Epoch loaders for training from scratch, single-process or one shard per DDP rank.

Every global batch is the same whatever the number of ranks: epoch e's order and each sample's
augmentation seed come from (seed, e) as in `BatchStream`, global batch j is order[j*B:(j+1)*B],
and rank r takes its contiguous slice of it. With the gradients averaged by DDP (and batch norm
synchronised) a run on W ranks therefore follows the single-process run. One DataLoader lives for
the whole run, so `persistent_workers` keeps its worker processes between epochs.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from archsearch.data.stream import SeededDataset, _epoch_seed
from archsearch.errors import DataError


class ShardSampler(Sampler[tuple[int, int]]):
    """(index, sample seed) keys of one rank's share of every full global batch of an epoch.

    The incomplete last global batch is dropped so that all ranks take the same number of steps.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1):
        if global_batch % world:
            raise DataError(f"the batch size {global_batch} must be divisible by the number of processes {world}")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world = rank, world
        self.local_batch = global_batch // world
        self.batches = n // global_batch
        if self.batches == 0:
            raise DataError(f"{n} training images cannot fill one batch of {global_batch}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches * self.local_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=gen).tolist()
        seeds = torch.randint(0, 2**62, (self.n,), generator=gen).tolist()
        for j in range(self.batches):
            lo = j * self.global_batch + self.rank * self.local_batch
            for i in range(lo, lo + self.local_batch):
                yield order[i], seeds[i]


def train_loader(dataset: Dataset, global_batch: int, seed: int, rank: int, world: int,
                 num_workers: int, pin_memory: bool) -> DataLoader:
    """Call `loader.sampler.set_epoch(e)` before iterating epoch e."""
    sampler = ShardSampler(len(dataset), global_batch, seed, rank, world)  # type: ignore[arg-type]
    return DataLoader(
        SeededDataset(dataset), batch_size=sampler.local_batch, sampler=sampler, num_workers=num_workers,
        pin_memory=pin_memory, persistent_workers=num_workers > 0, drop_last=False,
        generator=torch.Generator().manual_seed(0),  # keeps worker seeding off the global RNG
    )


def eval_loader(dataset: Dataset, batch: int, rank: int, world: int, num_workers: int,
                pin_memory: bool, limit: int = 0) -> DataLoader:
    """Rank r evaluates images r, r+W, ...: every image exactly once over all ranks.

    `limit` > 0 keeps only the first `limit` images (quick monitoring).
    """
    n = len(dataset)  # type: ignore[arg-type]
    if limit:
        n = min(n, limit)
    return DataLoader(Subset(dataset, range(rank, n, world)), batch_size=batch, shuffle=False,
                      num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0)
