"""The CTranslate2 engine on the real SmolLM2: its tokenizer and template equal transformers', its float32
conversion decodes like the reference, int8 is the default, seeds, stop strings, cache and its errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ctranslate2")

from sfbow_llm import ct2_engine, models
from sfbow_llm.chat import Request
from sfbow_llm.generation import generate, render_prompt
from sfbow_llm.packaged import MissingPackageError
from tests.sfbow_llm._rows import chat, limited

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [chat("What is the capital of France?"), chat("Name one colour."),
           Request([{"role": "user", "content": "Rewrite: where is the station?"}], prefill="<question>",
                   stop=["</question>"]),
           Request("The cat sat on the")]


@pytest.fixture(scope="module")
def smollm2_ct2_fp32(model_cache, smollm2):
    """CTranslate2 with float32 weights: the same numbers as the reference up to rounding."""
    return models.load_causal_lm(cache_dir=model_cache, engine="ctranslate2", quantization="float32", threads=1)


def _engine_folders(cache):
    return sorted(p for p in cache.iterdir() if "ctranslate2" in p.name and not p.name.startswith("."))


@pytest.mark.slow
def test_tokenizer_and_chat_template_equal_transformers(smollm2, smollm2_fast):
    fast, slow = smollm2_fast.tokenizer, smollm2.tokenizer
    for prompt in [*PROMPTS, Request([{"role": "user", "content": "Ünïcode «quotes» 🙂\n  and   spaces"}])]:
        text = render_prompt(fast, prompt)
        assert text == render_prompt(slow, prompt)
        special = isinstance(prompt.messages, str)
        ids = fast(text, add_special_tokens=special)["input_ids"]
        assert ids == slow(text, add_special_tokens=special)["input_ids"]
        assert fast.decode(ids, skip_special_tokens=True) == slow.decode(ids, skip_special_tokens=True)
    assert (fast.bos_token_id, fast.eos_token_id, fast.pad_token_id) == (
        slow.bos_token_id, slow.eos_token_id, slow.pad_token_id)


@pytest.mark.slow
def test_float32_engine_decodes_like_the_reference(smollm2, smollm2_ct2_fp32):
    reference = generate(smollm2, limited(PROMPTS, 12))
    engine = generate(smollm2_ct2_fp32, limited(PROMPTS, 12))
    for ours, theirs in zip(engine, reference):
        assert (ours.text, ours.prompt_tokens, ours.completion_tokens, ours.finish_reason, ours.stop) == (
            theirs.text, theirs.prompt_tokens, theirs.completion_tokens, theirs.finish_reason, theirs.stop)
    assert {(c.finish_reason, c.stop) for c in engine} >= {("stop", None), ("length", None)}  # end of turn, limit


@pytest.mark.slow
def test_int8_default_engine_answers_and_describes_itself(smollm2_fast):
    paris, colour, rewrite, cat = generate(smollm2_fast, limited(PROMPTS, 16))
    assert "Paris" in paris.text and (paris.finish_reason, paris.stop) == ("stop", None)
    assert cat.finish_reason == "length" and cat.completion_tokens == 16
    header = smollm2_fast.describe()
    assert header["engine"] == {"name": "ctranslate2", "version": __import__("ctranslate2").__version__,
                                "quantization": "int8",
                                "weights_sha256": smollm2_fast.marker["weights_sha256"]}
    assert header["sha256"] == models.ModelSource.resolve(None).sha256
    json.dumps(header)


@pytest.mark.slow
def test_per_row_stop_strings(smollm2_fast):
    full = generate(smollm2_fast, [chat("What is the capital of France?", max_new_tokens=12)])[0].text
    rows = [chat("What is the capital of France?", stop=["Paris", "France"]),
            chat("What is the capital of France?", stop=["Paris"]), chat("What is the capital of France?")]
    first, second, plain = generate(smollm2_fast, limited(rows, 12))
    assert (first.text, first.stop, first.finish_reason) == (full[:full.index("France")], "France", "stop")
    assert (second.text, second.stop) == (full[:full.index("Paris")], "Paris")
    assert first.completion_tokens < second.completion_tokens < plain.completion_tokens
    assert plain.text == full and plain.stop is None


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["smollm2", "smollm2_fast"])
def test_seeds_reproduce_whatever_ran_before(request, engine):
    lm = request.getfixturevalue(engine)
    rows = limited(PROMPTS[:2], 10, temperature=1.0)
    batch = [c.text for c in generate(lm, rows, batch_seed=7)]
    generate(lm, rows, batch_seed=99)  # other sampling in between
    assert [c.text for c in generate(lm, rows, batch_seed=7)] == batch
    own = [dataclasses.replace(rows[0], seed=3), dataclasses.replace(rows[1], seed=4)]
    per_row = [c.text for c in generate(lm, own)]  # no batch seed: each row samples with its request's seed
    alone = generate(lm, own[1:])[0].text
    assert per_row[1] == alone  # a row's text depends on its own seed, not on its batch mates
    others = {generate(lm, [dataclasses.replace(rows[1], seed=s)])[0].text for s in (5, 6, 8)}
    assert len(others | {alone}) > 1  # the seed matters


@pytest.mark.slow
def test_log_likelihoods_follow_the_reference(smollm2, smollm2_fast, smollm2_ct2_fp32):
    from sfbow_llm.loglik import sequence_log_likelihoods, tokenize_sentences

    ids = tokenize_sentences(smollm2.tokenizer, ["The cat sat on the mat.", "Paris is the capital of France.",
                                                 "Colourless green ideas sleep furiously."])
    assert tokenize_sentences(smollm2_fast.tokenizer, ["The cat sat on the mat."])[0] == ids[0]
    reference = sequence_log_likelihoods(smollm2.model, ids).log_likelihood
    fp32 = smollm2_ct2_fp32.sequence_log_likelihoods(ids)
    int8 = smollm2_fast.sequence_log_likelihoods(ids)
    np.testing.assert_allclose(fp32.log_likelihood, reference, rtol=1e-4)
    np.testing.assert_allclose(int8.log_likelihood, reference, rtol=0.1)
    assert list(int8.num_tokens) == [len(x) - 1 for x in ids]


@pytest.mark.slow
def test_a_new_process_loads_the_cache_without_torch(smollm2_fast, model_cache):
    code = ("import sys; from sfbow_llm.models import load_causal_lm; from sfbow_llm.generation import generate; "
            "from sfbow_llm.chat import Request; "
            f"lm = load_causal_lm(cache_dir={str(model_cache)!r}, threads=1); "
            "print(generate(lm, [Request('Hello', max_new_tokens=2)])[0].completion_tokens, lm.engine, "
            "'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2", "ctranslate2", "False", "False"]


@pytest.mark.slow
def test_a_cache_from_another_engine_version_is_rebuilt(smollm2_fast, model_cache, tmp_path):
    (folder,) = [f for f in _engine_folders(model_cache) if f.name.endswith("-int8")]
    assert folder.name.endswith(f"-ctranslate2-{smollm2_fast.marker['engine_version']}-int8")
    cache = tmp_path / "cache"
    cache.mkdir()
    for entry in model_cache.iterdir():  # the fp32 folder is shared; the engine folder is copied and aged
        if entry != folder and not entry.name.startswith("."):
            (cache / entry.name).symlink_to(entry)
    stale = cache / folder.name
    stale.mkdir()
    marker = {**smollm2_fast.marker, "engine_version": "0.0.1"}
    (stale / models.MARKER).write_text(json.dumps(marker))
    (stale / "model.bin").write_text("weights of another version")
    lm = models.load_causal_lm(cache_dir=cache, threads=1)
    assert lm.marker == smollm2_fast.marker and (stale / "model.bin").stat().st_size > 1000
    assert generate(lm, limited(PROMPTS[:1], 8))[0].text == generate(smollm2_fast, limited(PROMPTS[:1], 8))[0].text
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    (stale / models.MARKER).unlink()
    with pytest.raises(ValueError, match="not written by sfbow_llm: delete it"):
        models.load_causal_lm(cache_dir=cache)


def test_an_interrupted_conversion_leaves_no_half_cache(monkeypatch, tmp_path):
    def convert(model, out, cache, quantization):
        (out / "model.bin").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(ct2_engine, "_convert", convert)
    with pytest.raises(KeyboardInterrupt):
        models.load_causal_lm(cache_dir=tmp_path, engine="ctranslate2")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_engine_names_the_package_and_the_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a))
    assert models.default_engine() == "reference"
    with pytest.raises(MissingPackageError, match=r"'ctranslate2'.*pip install 'ctranslate2>=4.5'") as error:
        models.load_causal_lm(engine="ctranslate2")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="engine must be one of 'ctranslate2', 'reference', got 'llama'"):
        models.load_causal_lm(engine="llama")


def test_a_model_the_engine_cannot_run_is_named(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPTNeoConfig(vocab_size=64, hidden_size=8, num_layers=2, num_heads=2,
                                       attention_types=[[["global"], 2]], max_position_embeddings=32,
                                       bos_token_id=0, eos_token_id=0)
    folder = tmp_path / "tiny-neo"
    transformers.GPTNeoForCausalLM(config).save_pretrained(folder)
    with pytest.raises(ValueError, match=r"ctranslate2 .* cannot run .*tiny-neo .*GPTNeoConfig.*engine='reference'"):
        models.load_causal_lm(folder, cache_dir=tmp_path / "cache", engine="ctranslate2")
    assert [p for p in (tmp_path / "cache").iterdir()] == []
    with pytest.raises(ValueError, match="int8|float32"):
        models.load_causal_lm(folder, engine="ctranslate2", quantization="int3")
