"""Embedding: the one shared model per process, and a deterministic fake for tests.

The only package that imports torch / sentence-transformers, and only when a real model
is first used, so commands that do not embed (``--help``, ``status``, ``list-files``)
never pay for importing torch. Importing this package imports none of them.

Modules, one job each:

* ``protocol``  — the ``Embedder`` protocol (its contract) and ``EmbedError``
* ``model``     — ``ModelEmbedder``: a real local model (the bundled one by default),
  loaded lazily, encoded in governed batches with out-of-memory retry
* ``bert``      — ``BertEncoder``: the builtin torch encoder the bundled model runs on
  (imports torch; loaded only by ``model``)
* ``numpy_bert`` — ``NumpyBertEncoder``: the same forward pass in numpy, no torch
* ``bert_layout`` — what the two share: supported layouts, config, tokenisation
* ``tokens``    — ``WordPieceCounter``: the model's exact, additive token counter
* ``fake``      — ``FakeEmbedder``: hashed bag-of-words vectors for tests and benchmarks
* ``lifecycle`` — ``get_embedder`` (one embedder per process), ``IdleUnloader``,
  ``EmbedThread``
"""

from codeindex.embedding.fake import FAKE_MODEL, FakeEmbedder
from codeindex.embedding.lifecycle import EmbedThread, IdleUnloader, get_embedder
from codeindex.embedding.model import ModelEmbedder, bundled_model_path
from codeindex.embedding.protocol import Embedder, EmbedError
from codeindex.embedding.tokens import WordPieceCounter

__all__ = [
    "FAKE_MODEL",
    "EmbedError",
    "EmbedThread",
    "Embedder",
    "FakeEmbedder",
    "IdleUnloader",
    "ModelEmbedder",
    "WordPieceCounter",
    "bundled_model_path",
    "get_embedder",
]
