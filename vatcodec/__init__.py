"""vatcodec: a neural codec for 3D shapes built on the Variational Tokenizer (arXiv 2412.02202)."""

__version__ = "0.1.0"
