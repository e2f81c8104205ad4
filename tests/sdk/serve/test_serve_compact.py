"""``tvreid serve --compact``: the service opens its gallery with the int8 matrix and answers like the float one."""
from tvreid_sdk.serve.app import ServeCfg, Service


def test_compact_service_searches_like_the_float_one(tmp_path):
    compact = Service.load(ServeCfg(state=str(tmp_path / "a"), compact=True, backend="ort-cpu"))
    full = Service.load(ServeCfg(state=str(tmp_path / "b"), backend="ort-cpu"))
    try:
        assert compact.gallery.snapshot().codec is not None and full.gallery.snapshot().codec is None
        q = full.encoder.encode_text(["a man in a red jacket walking"])
        got = [h.key for h in compact.gallery.search(q, k=10)[0]]
        want = [h.key for h in full.gallery.search(q, k=10)[0]]
        assert got == want
    finally:
        compact.close()
        full.close()
