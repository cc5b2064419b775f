"""Language-model backends behind one interface (:class:`~evotox.backends.base.LanguageModel`).

- :mod:`evotox.backends.base`: the interface and :class:`BackendError`; the request and completion types
  and :class:`ContextLengthError` are sfbow_llm's (:mod:`sfbow_llm.chat`), re-exported here;
- :mod:`evotox.backends.scripted`: answers from a Python function, for unit tests of the search logic;
- :mod:`evotox.backends.local`: a local causal LM through sfbow_llm (default: the embedded SmolLM2-135M);
- :mod:`evotox.backends.http`: any OpenAI-compatible server (vLLM, llama.cpp's server, TGI, Ollama, hosted);
- :mod:`evotox.backends.llamacpp`: llama.cpp through llama-cpp-python (optional, built by the user).

Only the interface and the scripted backend are imported here; the others load their dependencies when used.
"""

from evotox.backends.base import BackendError, Completion, ContextLengthError, LanguageModel, Request
from evotox.backends.scripted import ScriptedBackend, ScriptedOracle

__all__ = ["BackendError", "Completion", "ContextLengthError", "LanguageModel", "Request", "ScriptedBackend",
           "ScriptedOracle"]
