"""TF-CLIP model: feature layout, SIE, TMD message passing and detachment, SSP, losses."""
import pytest
import torch

from training.tfclip.config import TfclipModelSection
from training.tfclip.losses import batch_hard_triplet
from training.tfclip.model import TFCLIP
from tvreid_sdk.modeling.tfclip import vision_tokens
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch

pytestmark = pytest.mark.usefixtures("one_thread")

def _model(num_classes=3, num_cameras=4, seed=0, **cfg):
    torch.manual_seed(seed)
    return TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(**cfg), num_classes, num_cameras)


def _batch(b=6, t=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"frames": torch.randn(b, t, 3, 64, 32, generator=gen), "pids": torch.tensor([0, 0, 1, 1, 2, 2][:b]),
            "camids": torch.tensor([0, 1, 2, 3, 0, 1][:b])}


def test_faithful_arch_gives_the_2048_d_feature():
    arch = get_arch("tfclip-vit-b16")
    assert arch.family == "tfclip" and arch.vision.num_tokens == 129 and arch.output_dim == 2048
    assert arch.preprocess.mean == (0.485, 0.456, 0.406) and arch.preprocess.image_size == (256, 128)
    torch.manual_seed(0)
    model = TFCLIP(arch, TfclipModelSection(), num_classes=4, num_cameras=6).eval()
    assert model.sie.shape == (6, 768) and model.memory.shape == (4, 512)
    assert model.tmd.blocks[0].message_attn.heads == 12  # TMD: width 768, 12 heads
    with torch.no_grad():
        f = model.features(torch.randn(1, 2, 3, 256, 128), torch.tensor([3]))
        emb = f.embedding()
    assert (f.cls.shape, f.proj.shape, f.tmd.shape, f.proj_tokens.shape) == ((1, 768), (1, 512), (1, 768), (1, 129, 512))
    assert emb.shape == (1, 2048)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(1))
    raw = torch.cat([f.cls, f.proj, f.tmd], dim=1)
    torch.testing.assert_close(emb, raw / raw.norm())  # cat[CLS-768, proj-512, TMD-768], then L2


def test_unknown_camera_adds_no_embedding_and_known_cameras_do():
    model = _model().eval()
    x = _batch()["frames"][:2]
    with torch.no_grad():
        none = model.encode(x)
        unknown = model.encode(x, torch.tensor([-1, 99]))  # outside 0..C-1 = unknown
        known = model.encode(x, torch.tensor([1, 2]))
        model.sie.zero_()
        zeroed = model.encode(x, torch.tensor([1, 2]))
    torch.testing.assert_close(unknown, none)
    torch.testing.assert_close(zeroed, none)
    assert (known - none).abs().max() > 1e-4


def test_sie_goes_on_the_cls_token_only():
    model = _model().eval()
    x = torch.randn(2, 3, 64, 32)
    offset = torch.zeros(2, model.arch.vision.width)
    with torch.no_grad():
        torch.testing.assert_close(vision_tokens(model.visual, x, offset), vision_tokens(model.visual, x))
        offset[:, 0] = 5.0
        # the offset enters before ln_pre/attention, so it reaches every token; but only through the CLS input:
        # the same change on the class embedding gives the same tokens
        shifted = vision_tokens(model.visual, x, offset)
        model.visual.class_embedding[0] += 5.0
        torch.testing.assert_close(shifted, vision_tokens(model.visual, x))


def test_tmd_exchanges_messages_across_frames_only_within_a_video():
    model = _model().eval()
    x = _batch(b=2, t=3)["frames"]
    y = x.clone()
    y[0, 2] = torch.randn(3, 64, 32)  # change the last frame of video 0
    with torch.no_grad():
        a, b = model.features(x), model.features(y)
    frames_a, frames_b = a.tmd_frames.view(2, 3, -1), b.tmd_frames.view(2, 3, -1)
    assert (frames_a[0, 0] - frames_b[0, 0]).abs().max() > 1e-5  # frame 0 of video 0 heard frame 2's message
    torch.testing.assert_close(frames_a[1], frames_b[1])  # video 1 is untouched


def test_tmd_branch_is_detached_from_the_backbone():
    model = _model()
    f = model.features(_batch()["frames"], None)
    f.tmd.sum().backward()
    assert model.visual.conv1.weight.grad is None
    assert model.tmd.blocks[0].message_fc.weight.grad.abs().sum() > 0


def test_ssp_gives_each_video_its_own_memory():
    model = _model().eval()
    model.set_memory(torch.randn(3, 32))
    with torch.no_grad():
        f = model.features(_batch()["frames"])
        per_sample = model.ssp(model.memory, f.proj_tokens)  # [B,K,D]
        assert per_sample.shape == (6, 3, 32)
        assert (per_sample[0] - per_sample[1]).abs().max() > 1e-5
        model.ssp.out_proj[1].weight.zero_()
        model.ssp.out_proj[1].bias.zero_()
        torch.testing.assert_close(model.ssp(model.memory, f.proj_tokens), model.memory.expand(6, -1, -1))


def test_batch_hard_triplet_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 5.0]])
    pids = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest pos 3, hardest neg 1 -> 3-1+0.3; anchor 1: pos 3, neg sqrt(10); anchor 2: pos 4, neg 1;
    # anchor 3: pos 4, neg 5 -> 0
    want = ((3 - 1 + 0.3) + max(0, 3 - 10 ** 0.5 + 0.3) + (4 - 1 + 0.3) + 0.0) / 4
    assert batch_hard_triplet(x, pids, 0.3).item() == pytest.approx(want, abs=1e-5)
    assert batch_hard_triplet(x, torch.zeros(4, dtype=torch.long)).item() == 0.0  # no negatives: no signal


def test_training_losses_are_the_released_terms_and_fall():
    model = _model(frame_id_weight=1.0)
    model.set_memory(torch.randn(3, 32))
    batch = _batch()
    out = model(batch)
    assert set(out) == {"id_loss", "triplet_loss", "i2m_loss", "frame_id_loss", "loss", "i2m_acc"}
    total = out["id_loss"] + out["triplet_loss"] + out["i2m_loss"] + out["frame_id_loss"]
    torch.testing.assert_close(out["loss"], total)
    assert out["id_loss"].item() == pytest.approx(0.25 * 3 * torch.log(torch.tensor(3.0)).item(), rel=0.05)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    first = out["loss"].item()
    for _ in range(10):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["loss"].item() < 0.7 * first
    assert model.heads.bn_cls.bias.abs().max() == 0  # BNNeck bias frozen


def test_bad_configs_are_config_errors():
    with pytest.raises(ConfigError, match="tfclip"):
        TFCLIP(get_arch("tiny-test"), TfclipModelSection(), 3, 2)
    with pytest.raises(ConfigError, match="num_cameras"):
        TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(sie=True), 3, 0)
    assert TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(sie=False), 3, 0).num_cameras == 0


def test_init_clip_loads_the_vision_tower_and_resizes_the_grid(tmp_path):
    from tvreid_sdk.modeling.clip import CLIPTowers
    from tvreid_sdk.modeling.weights import save_safetensors
    from training.tfclip.model import build_tfclip

    torch.manual_seed(3)
    square = get_arch("tiny-tfclip").replace(name="sq", family="dmca")
    square = square.replace(vision=square.vision.replace(image_size=(32, 32)))  # a 2x2 grid, like OpenAI's square
    clip = CLIPTowers(square)
    state = {k[len("text."):] if k.startswith("text.") else k: v for k, v in clip.state_dict().items()}  # OpenAI names
    save_safetensors(state, tmp_path / "clip.safetensors")
    model = build_tfclip(get_arch("tiny-tfclip"), TfclipModelSection(init_clip=str(tmp_path / "clip.safetensors")),
                         3, 2)
    torch.testing.assert_close(model.visual.conv1.weight, clip.visual.conv1.weight)
    torch.testing.assert_close(model.visual.proj, clip.visual.proj)
    assert model.visual.positional_embedding.shape == (9, 64)  # resized 2x2 -> 4x2 (+ CLS)
    torch.testing.assert_close(model.visual.positional_embedding[0], clip.visual.positional_embedding[0])


def test_grad_checkpointing_recomputes_the_vision_blocks_to_the_same_gradients():
    """``run.grad_checkpointing`` (the shared loop calls ``set_grad_checkpointing``) gives TF-CLIP the same loss and
    gradients."""
    grads = []
    for enable in (False, True):
        model = _model(ssp_dropout=0.0)
        model.set_grad_checkpointing(enable)
        assert model.visual.transformer.grad_checkpointing is enable
        model.train()
        loss = model(_batch())["loss"]
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss_a, grad_a), (loss_b, grad_b) = grads
    torch.testing.assert_close(loss_a, loss_b)
    assert grad_a.keys() == grad_b.keys()
    for name in grad_a:
        torch.testing.assert_close(grad_a[name], grad_b[name], msg=name)
