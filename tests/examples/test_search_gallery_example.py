"""examples/search_gallery.py runs as documented and ranks the folder it indexed."""
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_search_gallery_example_runs(tiny_bundle, tmp_path):
    frames_root = tmp_path / "frames"
    rng = np.random.default_rng(0)
    for t in range(5):
        folder = frames_root / f"track{t}"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)).save(folder / f"{i:03d}.jpg")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "search_gallery.py"), str(frames_root),
                          "man in red jacket walking", "--bundle", str(tiny_bundle), "--gallery", str(tmp_path / "g"),
                          "-k", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.strip().splitlines()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert {r[2] for r in rows} <= {f"track{t}" for t in range(5)}
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)
