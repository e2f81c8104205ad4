"""The embedded default: a demo bundle and a demo gallery shipped as package data."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import BundleError

ASSETS = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class DemoPaths:
    bundle: Path
    gallery: Path


def demo_paths() -> DemoPaths:
    """Where the shipped demo bundle and gallery live.

    Raises:
        BundleError: the package was installed without its demo data.
    """
    paths = DemoPaths(ASSETS / "demo_bundle", ASSETS / "demo_gallery")
    if not (paths.bundle / "manifest.json").is_file():
        raise BundleError(f"{paths.bundle}: the demo model is not installed with this package; "
                          "pass --bundle and --gallery explicitly, or reinstall tvreid")
    return paths
