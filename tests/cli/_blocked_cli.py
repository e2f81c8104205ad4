"""Run ``tvreid`` as in an install without some packages: ``python _blocked_cli.py MOD[,MOD...] ARGS...``.

An import hook placed first on ``sys.meta_path`` makes every import of the named top-level modules fail with
``ModuleNotFoundError``, as when the package is not installed; everything else imports normally.
"""
import importlib.abc
import sys

BLOCKED = set(sys.argv[1].split(","))


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Hide())
for loaded in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
    del sys.modules[loaded]
sys.argv = ["tvreid", *sys.argv[2:]]

from cli.main import main  # noqa: E402

main()
