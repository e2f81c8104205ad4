"""The lazy public API of ``tvreid_sdk``: ``dir()`` lists it, nothing private leaks, every name resolves."""
import subprocess
import sys
from pathlib import Path

import tvreid_sdk

ROOT = Path(__file__).resolve().parents[2]


def test_dir_lists_the_public_api_and_nothing_else():
    names = dir(tvreid_sdk)
    assert names == sorted(tvreid_sdk.__all__)
    assert {"Encoder", "Gallery", "load_bundle", "TvreidError", "FamilySpec", "get_family", "list_families",
            "__version__"} <= set(names)
    assert "importlib" not in names and "annotations" not in names and "_EXPORTS" not in names


def test_importlib_does_not_leak_into_the_package():
    assert "importlib" not in vars(tvreid_sdk)


def test_every_public_name_resolves_and_the_family_api_is_exported():
    for name in tvreid_sdk.__all__:
        assert getattr(tvreid_sdk, name) is not None, name
    assert tvreid_sdk.get_family("tfclip").name == "tfclip"
    assert isinstance(tvreid_sdk.get_family("dmca"), tvreid_sdk.FamilySpec)
    assert set(tvreid_sdk.list_families()) >= {"dmca", "cffa", "tfclip"}


def test_the_family_api_stays_torch_free():
    code = "import sys, tvreid_sdk; tvreid_sdk.get_family('cffa'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"
