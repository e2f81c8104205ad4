"""The data-parallel weight check: two gloo processes that hold the same weights report 0, different weights a
positive spread (and the engine's check raises)."""
import pytest
import torch
import torch.multiprocessing as mp

from training.distributed import RankSlice, checked_weight_spread, weight_spread


def _worker(rank: int, init_file: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        same = weight_spread(model)
        with torch.no_grad():
            model.bias[1] += 1e-3 * rank  # only rank 1 drifts, by one small step
        drifted = weight_spread(model)
        try:
            checked_weight_spread(model)
            raised = ""
        except RuntimeError as exc:
            raised = str(exc)
        results[rank] = (same, drifted, raised)
    finally:
        torch.distributed.destroy_process_group()


def test_weight_spread_is_zero_for_equal_ranks_and_positive_after_drift(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "pg"), results), nprocs=2, join=True)
    for rank in (0, 1):
        same, drifted, raised = results[rank]
        assert same == 0.0
        assert drifted == pytest.approx(1e-3, rel=1e-3)  # the bias sum differs by the drift
        assert "ranks hold different weights" in raised


def test_weight_spread_is_zero_without_a_process_group():
    assert weight_spread(torch.nn.Linear(2, 2)) == 0.0


def test_rank_slices_partition_each_batch():
    batches = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    slices = [list(RankSlice(batches, rank, 2, max_batches=1)) for rank in (0, 1)]
    assert slices == [[[0, 2, 4]], [[1, 3]]]
