"""retrieval_kd: distil rerankers into retrievers.

Data flows one way through on-disk artefacts, each a folder with a ``manifest.json``::

    candidates -> teacher scoring -> score store -> training -> student -> index -> run -> metrics

The core package holds the types, loaders, configuration, score store, losses, indexes and the
CLI; ``teachers``, ``students`` and ``evaluation`` build on it.
"""

from retrieval_kd.errors import InputError, RKDError

__version__ = "0.1.0"
__all__ = ["InputError", "RKDError", "__version__"]
