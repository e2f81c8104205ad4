"""The family axis is declared once: no code outside the registry and the family modules tests a family's name.

Family decisions go through :class:`tvreid_sdk.modeling.family.FamilySpec` (roles, queries, output dimension,
towers, typed manifest section, protocol) and the per-family hook registries of export and training. A new
``if arch.family == "x"`` elsewhere means a fourth family would have to edit that file too.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tvreid_sdk", "training", "export", "cli")
# comparisons with a family name, lookups of the schema-1 untyped section, and tests of a family constant
FAMILY_TEST = re.compile(r"""family\s*(==|!=)\s*["']|family\s+(not\s+)?in\s*[(\[{]|["']\s*(==|!=)\s*\w*\.?family\b"""
                         r"""|family\w*\([^)]*\)\s*(==|!=)\s*["']|export\.get\(\s*["']tfclip|export\[\s*["']tfclip"""
                         r"""|\.family\s*(==|!=)\s*FAMILY|["']family["'][^)]*\)\s*(==|!=)""")


def _is_family_module(path: Path) -> bool:
    """The registry itself and the modules that implement one family (they may name the family they implement)."""
    rel = path.relative_to(REPO).as_posix()
    return (rel in {"tvreid_sdk/modeling/family.py", "tvreid_sdk/modeling/tfclip.py", "training/cffa.py",
                    "training/cffa_eval.py"}
            or rel.startswith(("export/families/", "training/tfclip/", "training/families/")))


def family_tests() -> list[str]:
    hits = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if _is_family_module(path):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if FAMILY_TEST.search(code):
                    hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return hits


def test_no_family_name_tests_outside_the_family_modules():
    hits = family_tests()
    assert not hits, "route these through FamilySpec / the family hook registries:\n" + "\n".join(hits)


def test_the_scan_finds_a_family_test(tmp_path, monkeypatch):
    """The pattern catches the forms it is meant to catch (so the test above cannot pass by matching nothing)."""
    for line in ('if arch.family == "cffa":', "if manifest.family != 'tfclip':", 'x = m.export.get("tfclip", {})',
                 'if cfg.family in ("dmca", "cffa"):', 'if "tfclip" == arch.family:',
                 'if recipe_family(recipe) == "tfclip":', 'getattr(m, "family", None) == "tfclip"'):
        assert FAMILY_TEST.search(line), line
    for line in ("spec = arch.spec", "family = get_family(name)", 'FAMILY = "tfclip"'):
        assert not FAMILY_TEST.search(line), line
