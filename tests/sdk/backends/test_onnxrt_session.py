"""ONNX Runtime session settings of the ort backends."""
import numpy as np

from tvreid_sdk.backends import create_backend
from tvreid_sdk.bundle import load_bundle


def test_idle_threads_do_not_spin_between_runs(tiny_bundle):
    """A query is encoded and then matched on the same cores: spinning intra-op threads would slow the matcher."""
    backend = create_backend(load_bundle(tiny_bundle), "ort-cpu")
    try:
        assert backend._session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        cfg = backend.manifest.tokenizer
        ids = np.zeros((1, cfg.context_length), np.int32)
        ids[0, :2] = (cfg.sot_id, cfg.eot_id)
        out = backend.encode_text_ids(ids, np.array([1], np.int32))  # sessions still build and run with it
        assert out.shape == (1, backend.manifest.embed_dim) and np.isfinite(out).all()
    finally:
        backend.close()
