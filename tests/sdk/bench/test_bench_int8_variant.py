"""``tvreid bench`` measures ort-cpu int8 when the bundle has INT8 graphs (and only then)."""
from tvreid_sdk.bench.sdk_bench import Variant, backend_variants
from tvreid_sdk.bundle import load_bundle


def test_int8_variant_only_for_int8_bundles(tiny_bundle, tmp_path):
    import torch

    from export.build import export_bundle
    from tvreid_sdk.modeling.arch import get_arch
    from tvreid_sdk.modeling.checkpoint import save_checkpoint
    from tvreid_sdk.modeling.clip import CLIPTowers

    torch.manual_seed(0)
    ckpt = save_checkpoint(CLIPTowers(get_arch("tiny-test")).eval(), tmp_path / "t.safetensors", num_frames=4)
    bundle, _ = export_bundle(ckpt, tmp_path / "b", int8=True, fused=False, calib_items=4, progress=lambda _: None,
                              roles=("text_encoder", "video_encoder"))
    with_int8, _ = backend_variants(bundle, ["ort-cpu"], "cpu")
    plain, _ = backend_variants(load_bundle(tiny_bundle), ["ort-cpu"], "cpu")
    assert with_int8 == [Variant("ort-cpu", "fp32", "cpu"), Variant("ort-cpu", "int8", "cpu")]
    assert plain == [Variant("ort-cpu", "fp32", "cpu")]
