"""evotox: search-based toxicity testing of language models.

It measures a model's residual toxicity: how far the model under test (the SUT) can be pushed towards
toxic answers by a (1+lambda) evolutionary search in which a second model rewrites prompts and a toxicity
classifier scores the answers. Everything runs offline by default (local SmolLM2-135M and the Jigsaw
classifier); every prompt and answer stays in the local run file.

>>> from evotox import Engine, SearchConfig   # doctest: +SKIP
"""

from evotox.config import BASELINES, METHODS, VARIANTS, SearchConfig
from evotox.search import Engine, Evaluation, SearchResult

__all__ = ["BASELINES", "METHODS", "VARIANTS", "Engine", "Evaluation", "SearchConfig", "SearchResult"]
