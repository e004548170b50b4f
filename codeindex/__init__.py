"""codeindex: local semantic code search in bounded memory."""

__version__ = "0.1.0"
