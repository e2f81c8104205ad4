"""Two data-parallel processes (gloo) on the halves of a batch produce the gradient of one process on the whole
batch: batch-wide losses (vtc, sdm, MAL, triplet) see every rank's rows and per-item losses (id, msc/mlm) weigh each
rank's share. The batch has an odd size, so the ranks hold different row and masked-token counts."""
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from training.cffa import CFFA
from training.dmca import DMCA
from training.masking import mask_tokens
from training.tfclip.losses import batch_hard_triplet
from tvreid_sdk.modeling.arch import get_arch

PIDS = (0, 0, 1, 1, 2, 2, 3)


def _batch(arch, frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    b = len(PIDS)
    h, w = arch.vision.image_size
    ids, eot = np.zeros((b, 77), np.int64), np.zeros(b, np.int64)
    for i in range(b):
        n = 4 + 3 * i
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1], eot[i] = 49406, rng.integers(1, 49000, n), 49407, n + 1
    masked = [mask_tokens(row, rng, 0.3, forced="first") for row in ids]  # at least one masked token per caption
    return {"frames": torch.from_numpy(rng.standard_normal((b, frames, 3, h, w)).astype(np.float32)),
            "ids": torch.from_numpy(ids), "eot": torch.from_numpy(eot), "pids": torch.tensor(PIDS),
            "mlm_ids": torch.from_numpy(np.stack([m for m, _ in masked])),
            "mlm_labels": torch.from_numpy(np.stack([lab for _, lab in masked]))}


def _model(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "dmca":
        return DMCA(get_arch("tiny-test"), ("msc", "vtc", "sdm", "id"), num_classes=4, cmt_depth=1)
    model = CFFA(get_arch("tiny-cffa"), ("mal", "mlm", "id"), num_classes=4, cmt_depth=1, mal_c=0.1)
    for module in model.modules():  # FLFR's BatchNorm: per-rank batch statistics unless synchronised, which needs
        if isinstance(module, torch.nn.BatchNorm1d):  # SyncBatchNorm on CUDA (the engine converts there); here
            module.eval()  # it normalises with its running statistics, the same on every rank
    return model


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, family: str, init_file: str, out_file: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = _model(family)
        batch = _batch(model.arch if family == "cffa" else get_arch("tiny-test"), 2 if family == "dmca" else 1)
        runner = torch.nn.parallel.DistributedDataParallel(model)
        mine = {k: v[rank::2] for k, v in batch.items()}  # the engine's RankSlice: every world-th row
        runner(mine)["loss"].backward()
        if rank == 0:
            save_file(_grads(model), out_file)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("family", ["dmca", "cffa"])
def test_two_ranks_give_the_one_process_gradient(family, tmp_path):
    model = _model(family)
    batch = _batch(model.arch if family == "cffa" else get_arch("tiny-test"), 2 if family == "dmca" else 1)
    model(batch)["loss"].backward()
    expected = _grads(model)
    out = tmp_path / "rank0_grads.safetensors"
    mp.spawn(_worker, args=(family, str(tmp_path / "pg"), str(out)), nprocs=2, join=True)
    got = load_file(str(out))
    assert set(got) == set(expected) and len(got) > 20
    for name, grad in expected.items():  # float32 sums in another order: compare against each tensor's scale
        error = float((got[name] - grad).abs().max() / grad.abs().max().clamp_min(1e-12))
        assert error < 1e-4, f"{name}: largest difference {error:.2e} of the gradient's scale"


def _triplet_worker(rank: int, init_file: str, out_file: str) -> None:
    from training.distributed import gather_rows

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        features = torch.randn(len(PIDS), 8, generator=torch.Generator().manual_seed(3))
        mine = features[rank::2].clone().requires_grad_(True)
        rows, pids = gather_rows(mine, torch.tensor(PIDS)[rank::2])
        loss = batch_hard_triplet(rows, pids, 0.3)
        loss.backward()
        save_file({"loss": loss.detach().reshape(1), "grad": mine.grad}, out_file.format(rank=rank))
    finally:
        torch.distributed.destroy_process_group()


def test_gathered_triplet_mines_over_the_whole_batch(tmp_path):
    features = torch.randn(len(PIDS), 8, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    expected = batch_hard_triplet(features[[0, 2, 4, 6, 1, 3, 5]], torch.tensor(PIDS)[[0, 2, 4, 6, 1, 3, 5]], 0.3)
    expected.backward()
    out = str(tmp_path / "rank{rank}.safetensors")
    mp.spawn(_triplet_worker, args=(str(tmp_path / "pg"), out), nprocs=2, join=True)
    for rank in (0, 1):
        got = load_file(out.format(rank=rank))
        torch.testing.assert_close(got["loss"][0], expected.detach())
        # every rank backpropagates the same loss; summed over the 2 ranks (then halved by DDP) = one process's
        torch.testing.assert_close(got["grad"], 2 * features.grad[rank::2])
