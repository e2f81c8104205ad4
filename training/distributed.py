"""Multi-process training under ``torchrun``: process-group set-up, each rank's slice of the global batches, and a
check that data-parallel ranks still hold the same weights.
"""
from __future__ import annotations

import os

import torch


_JOINED = {"by_us": False}  # whether dist_info created the process group (and so release_process_group ends it)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; joins the process group (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        _JOINED["by_us"] = True
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank, world


def release_process_group() -> None:
    """After a finished run: wait for every rank (rank 0 may still be evaluating), then end the process group that
    :func:`dist_info` created. A rank that exits with its group alive can abort in the communication threads'
    teardown ("terminate called without an active exception")."""
    if _JOINED["by_us"] and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        _JOINED["by_us"] = False


class RankSlice:
    """This rank's share of each batch from the global batch sampler (all ranks draw the same batches)."""

    def __init__(self, sampler, rank: int, world: int, max_batches: int):
        self.sampler, self.rank, self.world, self.max_batches = sampler, rank, world, max_batches

    def __iter__(self):
        for i, batch in enumerate(self.sampler):
            if i >= self.max_batches:
                break
            yield list(batch)[self.rank::self.world]

    def __len__(self) -> int:
        return self.max_batches


def weight_spread(model: torch.nn.Module) -> float:
    """Largest difference between ranks of any parameter tensor's float64 sum and sum of squares; 0.0 when
    the ranks hold identical weights (or there is one process).

    Every rank must call it (it runs two all-reduces). Data-parallel ranks start from the same seed and apply the
    same averaged gradients, so a non-zero spread means gradients were not synchronised.
    """
    params = [p.detach() for p in model.parameters()]
    if _group_size() == 1 or not params:
        return 0.0
    sums = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()]) for p in params])  # [P,2]
    high = sums.to(_collective_device(params[0].device))
    low = high.clone()
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    return float((high - low).abs().max())


def _group_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _collective_device(device: torch.device | str | None) -> torch.device:
    """Where a tensor must be for a collective: its GPU under NCCL, the host under gloo."""
    return torch.device(device) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 (ranks may hold different row counts); the backward sums the gradient over ranks
    and returns this rank's rows, so a loss every rank computes on the gathered rows trains like one process."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int], rank: int):  # noqa: D102 - autograd hook
        dist = torch.distributed
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.offset, ctx.rows = sum(sizes[:rank]), x.shape[0]
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102 - autograd hook
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad)  # Σ over ranks of d(loss_r)/d(rows)
        return grad[ctx.offset: ctx.offset + ctx.rows], None, None


def gather_rows(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate every rank's rows of each tensor (rank order), keeping gradients to this rank's rows.

    With one process the tensors come back unchanged. Under data parallelism a batch-wide loss (contrastive,
    triplet) computed by every rank on the gathered rows sees the recipe's whole batch: each rank's loss is the same
    value, the backward adds the ranks' gradients and DDP averages them, which gives the single-process gradient.
    All tensors must have the same number of rows.
    """
    world = _group_size()
    if world == 1:
        return tensors
    dist = torch.distributed
    rows = tensors[0].shape[0]
    counts = torch.tensor([rows], device=_collective_device(tensors[0].device))
    gathered = [torch.empty_like(counts) for _ in range(world)]
    dist.all_gather(gathered, counts)
    sizes = [int(c) for c in gathered]
    rank = dist.get_rank()
    return tuple(_GatherRows.apply(t, sizes, rank) for t in tensors)


def rank_share(count: int, device: torch.device | None = None) -> float:
    """``count · world / Σ_ranks count``: the factor that turns this rank's mean of a per-item loss into its share of
    the mean over all ranks' items once DDP averages the ranks' gradients (1.0 with one process, or when every
    rank has the same count)."""
    world = _group_size()
    if world == 1:
        return 1.0
    dist = torch.distributed
    total = torch.tensor([float(count)], dtype=torch.float64,
                         device=_collective_device(device or "cuda"))  # NCCL: the current GPU unless given
    dist.all_reduce(total)
    return float(count) * world / float(total) if float(total) > 0 else 1.0


def checked_weight_spread(model: torch.nn.Module) -> float:
    """:func:`weight_spread` across the data-parallel ranks (every rank must call it).

    Raises:
        RuntimeError: the ranks no longer hold the same weights.
    """
    spread = weight_spread(model)
    if spread > 0.0:
        raise RuntimeError(f"data-parallel ranks hold different weights (largest difference {spread:.3g}): "
                           "gradients were not synchronised; check that every rank runs the same recipe")
    return spread
