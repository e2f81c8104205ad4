"""Crash-safe tracklet gallery and exact top-k matching (numpy only; torch never required).

Design:

- **SQLite is the source of truth.** A gallery is a directory holding ``gallery.sqlite`` in WAL mode
  with ``synchronous=FULL``. Each ``Gallery.add`` batch is ONE transaction: after ``add`` returns, the
  batch survives a kill -9 or power loss; a batch interrupted half-way never becomes visible. Every
  embedding is stored as float32 little-endian bytes with its crc32, and the other columns carry
  checksums too (SQLite itself does not checksum content). Opening runs ``PRAGMA quick_check`` and
  re-checks every row's embedding crc32, size and metadata checksum; ``get`` verifies the whole row.
  Damage raises GalleryCorruptError rather than return wrong rows. The ``meta`` row binds the gallery
  to one embedding space (``model_id``, ``embed_dim``); other models' vectors are refused.
- **The matrix is a derived cache.** Search runs on an in-memory [N,D] float32/float16 matrix plus
  metadata arrays, built from the store and refreshed incrementally: every write transaction bumps a
  ``generation`` counter, and a reader that sees a new generation loads only the rows appended since
  (and drops deleted ones). Commits of other threads and processes therefore show up at the next
  search. The cache can be thrown away and rebuilt at any time; it is never written to disk, so it
  cannot go out of sync with the store (the FAISS-plus-id-map failure mode).
- **Matching is exact.** ``matchers.topk_cosine`` scores the matrix in chunks with BLAS and merges
  running top-k lists, with deterministic tie order (lower index first) and bounded memory. The
  ``MATCHERS`` registry (:mod:`.matchers`) also offers "torch" and "onnxruntime" matchers (GPU paths),
  whose packages are imported only when such a matcher is built. ``Gallery.search`` normalises the
  queries once; matchers take unit rows.
- **Millions of rows: an optional FAISS sidecar** (:mod:`.ann`, ``pip install "tvreid[scale]"``), derived and
  rebuildable like the matrix: time-sharded IVF files with checksums, written atomically, refused when stale or
  damaged; a planner picks exact masked scan or IVF + exact re-rank per query (``Hit.approximate`` says which).
- **Query by example is a search.** ``Gallery.similar(key)`` searches with a stored embedding and leaves
  the example out (``search(..., exclude=keys)``); ``Gallery.search_combined`` mixes a text query with
  examples (:func:`combine_queries`); ``Gallery.select`` picks tracklets by key, camera and time.

Example:
    >>> g = Gallery.create("runs/gallery", model_id=bundle_sha, embed_dim=512)   # doctest: +SKIP
    >>> g.add([TrackletRecord(key="0001C1T0001", camera="C1")], vectors)          # doctest: +SKIP
    >>> g.search(text_vectors, k=10, cameras=["C1"])                             # doctest: +SKIP
"""
from .gallery import Gallery
from .matchers import MATCHERS, Matcher, topk_cosine
from .query import combine_queries
from .records import GalleryEntry, Hit, TrackletRecord
from .store import SCHEMA_VERSION, GalleryMeta

__all__ = ["Gallery", "TrackletRecord", "GalleryEntry", "Hit", "GalleryMeta", "MATCHERS", "Matcher", "topk_cosine",
           "combine_queries", "SCHEMA_VERSION"]
