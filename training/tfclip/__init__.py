"""TF-CLIP (Yu et al., AAAI 2024; AsuradaYuci/TF-CLIP): text-free CLIP for video-to-video person re-identification.

Modules: :mod:`.config` (recipes), :mod:`.modules` (SSP; SIE and TMD live in
:mod:`tvreid_sdk.modeling.tfclip`), :mod:`.model` (:class:`~.model.TFCLIP`),
:mod:`.losses`, :mod:`.data`, :mod:`.optim`, :mod:`.evaluate` (CLIP-Memory, ``mars`` protocol),
:mod:`.checkpoint` and :mod:`.hooks` (what the shared loop :func:`training.engine.train` runs for
``model.family: tfclip``; registered in :mod:`training.families`).
"""
