"""``--triton URL`` / ``--triton-prefix`` of ``tvreid match``, ``index`` and ``serve``: encode through a Triton
server instead of a local bundle, with the server's model id checked against the gallery's before the first query."""
from __future__ import annotations

import functools

import click

TRITON_HELP = ("Encode through this Triton server (http://HOST:PORT or grpc://HOST:PORT) holding a repository written "
               "by `tvreid export --format triton`; its model id must be the gallery's.")


def triton_options(command):
    """Add ``--triton URL`` and ``--triton-prefix`` to a command (as ``triton`` and ``triton_prefix``)."""
    @click.option("--triton", "triton", metavar="URL", default=None, help=TRITON_HELP)
    @click.option("--triton-prefix", "triton_prefix", default="tvreid_", show_default=True,
                  help="Model name prefix of the Triton repository (`tvreid export --model-prefix`).")
    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        return command(*args, **kwargs)

    return wrapped


def gallery_model_id(path) -> str | None:
    """The model id of the gallery at ``path``, or None when there is no gallery there yet."""
    from tvreid_sdk.gallery.gallery import GALLERY_DB, Gallery, gallery_dir

    if not (gallery_dir(path) / GALLERY_DB).exists():
        return None
    with Gallery.open(path, readonly=True) as gallery:
        return gallery.model_id


def open_encoder(bundle_path, backend: str, triton: str | None, prefix: str, *, gallery=None):
    """The encoder of a command: the local bundle (default: the demo model), or the Triton server at ``triton``,
    refused before any query when it serves another model than the gallery at ``gallery`` or ``bundle_path``.

    Raises:
        ConfigError: ``--backend`` given with ``--triton``.
        RemoteModelError: the server serves another model than the gallery or ``--bundle``.
    """
    from tvreid_sdk import Encoder, demo_paths, load_bundle
    from tvreid_sdk.errors import ConfigError, RemoteModelError

    if triton is None:
        return Encoder.from_bundle(bundle_path or demo_paths().bundle, backend=backend)
    if backend != "auto":
        raise ConfigError(f"--backend {backend} and --triton exclude each other: with --triton the server runs the "
                          "encoders; drop one of them")
    model_id = gallery_model_id(gallery) if gallery is not None else None
    encoder = Encoder.from_triton(triton, model_prefix=prefix, model_id=model_id, expected_by=f"gallery {gallery}")
    if bundle_path is not None and load_bundle(bundle_path).manifest.model_id != encoder.model_id:
        encoder.close()
        raise RemoteModelError(f"the Triton server at {triton} serves model id {encoder.model_id[:16]} but --bundle "
                               f"{bundle_path} is another model; drop --bundle (the server's manifest is used) or "
                               "load that bundle's repository on the server")
    return encoder
