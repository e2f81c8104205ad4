"""Text side of the SDK: the torch-free CLIP BPE tokenizer (DMCA/IRRA vocabulary with ``<|mask|>``)."""
from .tokenizer import TokenizedBatch, Tokenizer, get_tokenizer, vocab_sha256

__all__ = ["TokenizedBatch", "Tokenizer", "get_tokenizer", "vocab_sha256"]
