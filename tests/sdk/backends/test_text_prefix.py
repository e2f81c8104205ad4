"""CPU backends feed a dynamic-token text graph only the columns up to the micro-batch's last EOT."""
import numpy as np
import pytest

from tvreid_sdk.backends import create_backend
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.text.tokenizer import get_tokenizer

TEXTS = ["a man in a red jacket", "a woman with a blue bag and a black umbrella walking towards the door", "child"]


def _backends():
    names = ["ort-cpu"]
    try:
        import openvino  # noqa: F401
        names.append("openvino")
    except ImportError:
        pass
    return names


@pytest.mark.parametrize("name", _backends())
def test_prefix_feed_equals_the_full_context(tiny_bundle, name):
    tok = get_tokenizer()(TEXTS)
    with create_backend(load_bundle(tiny_bundle), name) as backend:
        assert backend.text_takes_prefix()
        seen = []
        run_text = backend._run_text

        def spy(ids, eot):
            seen.append(ids.shape)
            return run_text(ids, eot)

        backend._run_text = spy
        got = backend.encode_text_ids(tok.ids, tok.eot_index)  # [3,D]
        full = run_text(tok.ids, tok.eot_index)  # [3,D], all 77 columns
    assert seen == [(3, int(tok.eot_index.max()) + 1)] and seen[0][1] < 77
    np.testing.assert_allclose(got, full, rtol=0, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_each_micro_batch_is_cut_to_its_own_last_eot(tiny_bundle):
    tok = get_tokenizer()(TEXTS)
    with create_backend(load_bundle(tiny_bundle), "ort-cpu") as backend:
        backend.max_batch = 1
        seen = []
        run_text = backend._run_text
        backend._run_text = lambda ids, eot: seen.append(ids.shape[1]) or run_text(ids, eot)
        backend.encode_text_ids(tok.ids, tok.eot_index)
    assert seen == [int(e) + 1 for e in tok.eot_index]


@pytest.mark.parametrize("name", _backends())
def test_a_static_77_graph_keeps_the_full_context(static_text_bundle, tiny_bundle, name):
    """Bundles exported before the dynamic token axis still get all 77 columns, and give what the dynamic graph of
    the same weights gives."""
    tok = get_tokenizer()(TEXTS)
    with create_backend(load_bundle(static_text_bundle), name) as backend:
        assert not backend.text_takes_prefix()
        seen = []
        run_text = backend._run_text
        backend._run_text = lambda ids, eot: seen.append(ids.shape) or run_text(ids, eot)
        got = backend.encode_text_ids(tok.ids, tok.eot_index)  # [3,D]
    assert seen == [(3, 77)]
    with create_backend(load_bundle(tiny_bundle), name) as dynamic:
        np.testing.assert_allclose(got, dynamic.encode_text_ids(tok.ids, tok.eot_index), rtol=0, atol=1e-5)


def test_an_eot_outside_the_context_is_refused(tiny_bundle):
    tok = get_tokenizer()(TEXTS[:1])
    with create_backend(load_bundle(tiny_bundle), "ort-cpu") as backend:
        with pytest.raises(ValueError, match="eot indices"):
            backend.encode_text_ids(tok.ids, np.array([77], np.int32))


@pytest.mark.parametrize("name", _backends())
def test_a_manifest_context_length_the_text_graph_was_not_exported_for_is_refused(tiny_bundle, tmp_path, name):
    """The token axis is dynamic, so the graph's own ``tvreid.context_length`` metadata is what the manifest must
    match (a tampered or mixed-up manifest)."""
    import json
    import shutil

    from tvreid_sdk.errors import BundleError

    root = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, root)
    data = json.loads((root / "manifest.json").read_text())
    data["tokenizer"]["context_length"] = 76
    (root / "manifest.json").write_text(json.dumps(data))
    tok = get_tokenizer()(TEXTS[:1])
    with create_backend(load_bundle(root), name) as backend:
        with pytest.raises(BundleError, match="exported for 77 tokens but manifest.json says 76"):
            backend.encode_text_ids(tok.ids[:, :76], tok.eot_index)
