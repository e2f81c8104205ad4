"""Still images in the SDK: ``Encoder.encode_images``, image galleries and query by example, on a cffa bundle."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tvreid_sdk import Encoder, Gallery
from tvreid_sdk.errors import CorruptInputError
from tvreid_sdk.gallery import TrackletRecord
from tvreid_sdk.ingest import index_records
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import CFFATowers
from tvreid_sdk.vision.preprocess import resize_frame


@pytest.fixture(scope="module")
def cffa_towers():
    torch.manual_seed(0)
    towers = CFFATowers(get_arch("tiny-cffa"))
    for head in (towers.flfr_visual, towers.flfr_text):  # BatchNorm statistics off their init
        head.mlp_bn.running_mean.normal_(0, 0.5)
        head.mlp_bn.running_var.uniform_(0.5, 2.0)
    return towers.eval()


@pytest.fixture(scope="module")
def cffa_bundle(cffa_towers, tmp_path_factory):
    from export.build import export_bundle
    from tvreid_sdk.modeling.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("cffa-sdk")
    ckpt = save_checkpoint(cffa_towers, root / "cffa.safetensors", num_frames=1)  # towers + flfr_* heads
    export_bundle(ckpt, root / "bundle", progress=lambda _: None)
    return root / "bundle"


@pytest.fixture(scope="module")
def enc(cffa_bundle):
    with Encoder.from_bundle(cffa_bundle, backend="ort-cpu") as encoder:
        yield encoder


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Eight person-like crops of different sizes, saved as PNG: ``(paths, arrays)``."""
    root = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    paths, arrays = [], []
    for i in range(8):
        blocks = rng.integers(0, 256, (4, 2, 3))
        img = np.kron(blocks, np.ones((30 + 4 * i, 20, 1))).astype(np.uint8)  # [120+16i, 40, 3]
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        arrays.append(img)
        paths.append(str(root / f"{i:04d}.png"))
        Image.fromarray(img).save(paths[-1])
    return paths, arrays


def _reference(towers, arrays):
    pre = towers.cfg.preprocess
    x = torch.from_numpy(np.stack([resize_frame(a, pre) for a in arrays])).float() / 255.0
    x = ((x - torch.tensor(pre.mean)) / torch.tensor(pre.std)).movedim(-1, 1)
    with torch.no_grad():
        return towers.image_parts(x)


def test_encode_images_from_paths_and_arrays_equals_the_cffa_reference(enc, crops, cffa_towers):
    paths, arrays = crops
    assert enc.embed_dim == 192 and enc.manifest.family == "cffa" and enc.manifest.num_frames == 1
    from_paths = enc.encode_images(paths)
    from_arrays = enc.encode_images(arrays)
    assert from_paths.shape == (8, 192) and from_paths.dtype == np.float32
    np.testing.assert_allclose(from_paths, from_arrays, atol=1e-6)
    np.testing.assert_allclose(enc.encode_images(arrays[3]), from_arrays[3:4], atol=1e-6)  # one H×W×3 image
    np.testing.assert_allclose(enc.encode_images(paths[2]), from_arrays[2:3], atol=1e-6)  # one path
    np.testing.assert_allclose(np.linalg.norm(from_paths, axis=1), 1.0, atol=1e-5)
    glob, local = _reference(cffa_towers, arrays)
    expected = torch.cat([F.normalize(glob, dim=-1), F.normalize(local, dim=-1)], -1).numpy() / np.sqrt(2)
    cos = (from_arrays * expected).sum(1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.9999
    assert enc.encode_images([]).shape == (0, 192)


def test_image_gallery_text_and_example_queries(enc, crops, cffa_towers, tmp_path):
    paths, arrays = crops
    records = [TrackletRecord(key=f"img{i}", camera="unknown", frame_paths=(p,), person_id=str(i))
               for i, p in enumerate(paths)]
    with Gallery.create(tmp_path / "g", model_id=enc.model_id, embed_dim=enc.embed_dim) as gallery:
        report = index_records(enc, gallery, records)
        assert report.added == 8 and gallery.embed_dim == 192
        hits = gallery.search(enc.encode_images([arrays[5]]), k=3)[0]  # "find this person"
        assert hits[0].key == "img5" and hits[0].score == pytest.approx(1.0, abs=1e-4)
        text = "a woman in a red coat and black trousers"
        hits = gallery.search(enc.encode_text([text]), k=8)[0]
    tok = enc.tokenizer([text])
    with torch.no_grad():
        tg, tl = cffa_towers.text_parts(torch.from_numpy(tok.ids.astype(np.int64)),
                                        torch.from_numpy(tok.eot_index.astype(np.int64)))
    ig, il = _reference(cffa_towers, arrays)
    cffa_score = ((F.normalize(tg, dim=-1) @ F.normalize(ig, dim=-1).t() + F.normalize(tl, dim=-1)
                   @ F.normalize(il, dim=-1).t()) / 2)[0].numpy()  # CFFA's test score, computed part by part
    assert [h.key for h in hits] == [f"img{i}" for i in np.argsort(-cffa_score, kind="stable")]
    np.testing.assert_allclose([h.score for h in hits], np.sort(cffa_score)[::-1], atol=1e-4)


def test_bad_images_are_refused_naming_the_file(enc, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(CorruptInputError) as info:
        enc.encode_images([str(broken)])
    assert str(broken) in str(info.value)


def test_torch_backend_runs_the_joint_cffa_vector_like_onnx(enc, cffa_bundle, crops):
    pytest.importorskip("safetensors")
    _, arrays = crops
    text = ["a man in a blue shirt", "a woman with a red bag and white shoes"]
    with Encoder.from_bundle(cffa_bundle, backend="torch") as torch_enc:
        assert torch_enc.embed_dim == enc.embed_dim == enc.manifest.embed_dim == 192
        for a, b in ((torch_enc.encode_images(arrays), enc.encode_images(arrays)),
                     (torch_enc.encode_text(text), enc.encode_text(text))):
            assert a.shape == b.shape
            assert (a * b).sum(1).min() >= 0.9999


def test_encode_images_on_a_video_bundle_is_the_image_repeated(tiny_bundle, crops):
    _, arrays = crops
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as video_enc:
        images = video_enc.encode_images(arrays[:3])
        repeated = video_enc.encode_tracklets([[a] * video_enc.manifest.num_frames for a in arrays[:3]])
        frames = video_enc.encode_frames(arrays[:3])
    np.testing.assert_allclose(images, repeated, atol=1e-6)
    frames = frames / np.linalg.norm(frames, axis=1, keepdims=True)
    assert ((images * frames).sum(1)).min() >= 0.9999  # the mean of T identical frames is the frame
