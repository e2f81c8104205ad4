"""Where a Ray run executes: :class:`RayCfg` and :func:`ray_session` (start a local cluster, or join one).

Ray is imported here, lazily, and only when a session opens. Offline defaults: usage stats off
(``RAY_USAGE_STATS_ENABLED=0``), no dashboard, a bounded object store; a local cluster listens on 127.0.0.1 only
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which must be set before Ray is first imported; an explicit value in the
environment wins). The stages reach the workers through ``runtime_env={"py_modules": [tvreid_sdk]}``
(:func:`runtime_env`), so cluster nodes need tvreid's dependencies (numpy, Pillow, ONNX Runtime) but neither
tvreid itself nor network access.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

from ..errors import ConfigError

__all__ = ["RayCfg", "ray_session", "runtime_env", "stage_env", "import_ray", "RAY_EXTRA", "TEST_ENV_PREFIX"]

RAY_EXTRA = 'pip install "tvreid[scale]"'
#: environment variables with this prefix (test hooks) are handed to the workers
TEST_ENV_PREFIX = "TVREID_TEST_"
_SHIP_EXCLUDES = ["__pycache__", "*.pyc", "assets/demo_bundle", "assets/demo_gallery"]


@dataclasses.dataclass(frozen=True)
class RayCfg:
    """Where and how wide a Ray indexing run goes.

    Args:
        address: None: start a local cluster inside this process (127.0.0.1 only) and stop it at the end;
            ``"auto"``: join the cluster started on this machine by ``ray start``; ``"HOST:PORT"`` (its GCS) or
            ``"ray://HOST:PORT"`` (Ray Client): join that cluster. A session already open in this process
            (``ray.init`` called by the caller, with ``runtime_env=``:func:`runtime_env` unless tvreid is
            installed on every node) is used as it is. ``kill -9`` of a process that started its own cluster leaves
            two of Ray's agent processes behind: for long runs, ``ray start --head`` once and join with ``"auto"``.
        actors: encoder actors (one model copy each; one per GPU with ``gpus_per_actor=1``).
        gpus_per_actor: GPUs per encoder actor (0: CPU actors; fractions share a GPU).
        actor_cpus: CPUs each encoder actor reserves; below 1 so decode tasks keep a CPU (an actor pool that holds
            every CPU starves the read and decode tasks and hangs the dataset: ray-project/ray#44687).
        decode_cpus: CPUs each decode task reserves.
        backend: the encoder backend in the actors (``auto``: the GPU one when the actor has a GPU).
        num_cpus, num_gpus: resources of a local cluster (None: what the machine has; GPUs may be logical, which
            exercises GPU scheduling on a machine without one).
        object_store_mb: object store size of a local cluster, MiB.
        max_restarts: restarts of a crashed encoder actor (its batch is retried on the restarted actor).
    """

    address: Optional[str] = None
    actors: int = 1
    gpus_per_actor: float = 0.0
    actor_cpus: float = 0.5
    decode_cpus: float = 1.0
    backend: str = "auto"
    num_cpus: Optional[int] = None
    num_gpus: Optional[float] = None
    object_store_mb: int = 512
    max_restarts: int = 3

    def __post_init__(self) -> None:
        checks = [("actors", isinstance(self.actors, int) and self.actors >= 1, "an integer >= 1"),
                  ("gpus_per_actor", _number(self.gpus_per_actor) and self.gpus_per_actor >= 0, "a number >= 0"),
                  ("actor_cpus", _number(self.actor_cpus) and self.actor_cpus > 0, "a number > 0"),
                  ("decode_cpus", _number(self.decode_cpus) and self.decode_cpus > 0, "a number > 0"),
                  ("object_store_mb", isinstance(self.object_store_mb, int) and self.object_store_mb >= 80,
                   "an integer >= 80 (MiB)"),
                  ("max_restarts", isinstance(self.max_restarts, int) and self.max_restarts >= 0, "an integer >= 0"),
                  ("address", self.address is None or (isinstance(self.address, str) and bool(self.address.strip())),
                   "None, 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")]
        for name, ok, need in checks:
            if not ok:
                raise ConfigError(f"RayCfg.{name} must be {need}, got {getattr(self, name)!r}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def import_ray(local: bool):
    """``ray`` with the offline defaults set first (``local``: a cluster is about to start in this process)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # node IP = 127.0.0.1: loopback only
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"Ray indexing needs the 'ray[data]' package, which is not installed; install it with: "
                          f"{RAY_EXTRA}") from None
    return ray


def runtime_env() -> dict:
    """The job-level ``runtime_env`` of a tvreid Ray session: this tvreid_sdk as a py_module, so the workers import
    the driver's code with nothing installed on the nodes (Ray takes local modules at ``ray.init`` only). Open your
    own session with ``ray.init(runtime_env=runtime_env())`` to run tvreid stages in it."""
    import tvreid_sdk

    return {"py_modules": [str(Path(tvreid_sdk.__file__).resolve().parent)], "excludes": list(_SHIP_EXCLUDES)}


def stage_env() -> dict | None:
    """The per-stage ``runtime_env``: the ``TVREID_TEST_*`` hooks of this process's environment, if any."""
    hooks = {k: v for k, v in os.environ.items() if k.startswith(TEST_ENV_PREFIX)}
    return {"env_vars": hooks} if hooks else None


@contextlib.contextmanager
def ray_session(cfg: RayCfg) -> Iterator[object]:
    """``ray``, initialised per ``cfg`` (see :class:`RayCfg`); a session this opened is shut down on exit."""
    ray = import_ray(local=cfg.address is None)
    started = False
    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False, "logging_level": logging.ERROR, "namespace": "tvreid",
                        "runtime_env": runtime_env()}
        if cfg.address is None:
            kwargs.update(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
                          object_store_memory=cfg.object_store_mb * 2 ** 20)
        else:
            kwargs["address"] = cfg.address.strip()
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "start a local Ray cluster" if cfg.address is None else f"join the Ray cluster at {cfg.address!r}"
            raise ConfigError(f"could not {where} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                              "check the address (`ray status` on the head node) or leave --address out to start "
                              "a local cluster") from None
        started = True
        # our session, our output: one progress display (the caller's), Ray's warnings only when they are errors
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
