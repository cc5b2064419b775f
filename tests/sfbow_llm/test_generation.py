"""Batched generation on the real SmolLM2: equal to one-at-a-time and to transformers' own generate, per-row
stop strings, lengths, seeded sampling and the errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import dataclasses  # noqa: E402

from sfbow_llm.chat import ContextLengthError, Request  # noqa: E402
from sfbow_llm.generation import generate, render_prompt  # noqa: E402
from tests.sfbow_llm._rows import chat, limited  # noqa: E402

pytestmark = pytest.mark.slow  # the real model: about 20 s to convert once per session, seconds per test

PROMPTS = [chat("What is the capital of France?"), chat("Name one colour."),
           chat("Write a short sentence about a dog who likes to swim in the lake every summer morning.")]


@pytest.fixture(scope="module")
def greedy_batch(smollm2):
    return generate(smollm2, limited(PROMPTS, 8))


def test_batch_equals_one_at_a_time_and_transformers_generate(smollm2, greedy_batch):
    for prompt, batched in zip(PROMPTS, greedy_batch):
        alone = generate(smollm2, limited([prompt], 8))[0]
        ids = smollm2.tokenizer(render_prompt(smollm2.tokenizer, prompt), return_tensors="pt",
                                add_special_tokens=False)
        with torch.no_grad():
            reference = smollm2.model.generate(**ids, max_new_tokens=8, do_sample=False)
        expected = smollm2.tokenizer.decode(reference[0, ids.input_ids.shape[1]:], skip_special_tokens=True)
        assert batched.text == alone.text == expected
        assert batched.prompt_tokens == alone.prompt_tokens == ids.input_ids.shape[1]
        assert batched.completion_tokens == alone.completion_tokens


def test_counts_reasons_and_seconds(greedy_batch):
    paris, _, dog = greedy_batch
    assert "Paris" in paris.text and (paris.finish_reason, paris.stop) == ("stop", None)  # the end of the turn
    assert paris.completion_tokens <= 8
    assert dog.finish_reason == "length" and dog.completion_tokens == 8
    assert greedy_batch[0].seconds > 0 and len({c.seconds for c in greedy_batch}) == 1  # an even share of the call


def test_per_row_stop_strings_cut_at_the_first_one(smollm2, greedy_batch):
    full = greedy_batch[0].text  # "The capital of France is Paris."
    rows = [chat("What is the capital of France?", stop=["Paris", "France"]),
            chat("What is the capital of France?", stop=["Paris"]),
            chat("What is the capital of France?")]
    first, second, plain = generate(smollm2, limited(rows, 8))
    assert (first.text, first.stop, first.finish_reason) == (full[:full.index("France")], "France", "stop")
    assert (second.text, second.stop) == (full[:full.index("Paris")], "Paris")
    assert first.completion_tokens < second.completion_tokens < plain.completion_tokens
    assert plain.text == full and plain.stop is None


def test_prefill_is_continued_not_repeated(smollm2):
    plain = generate(smollm2, [chat("What is the capital of France?", max_new_tokens=8)])[0]
    prefilled = generate(smollm2, [chat("What is the capital of France?", prefill="The capital", max_new_tokens=8)])[0]
    assert not prefilled.text.startswith("The capital")
    assert plain.text.startswith("The capital" + prefilled.text[:5])
    assert prefilled.prompt_tokens > plain.prompt_tokens


def test_plain_text_prompt(smollm2):
    (out,) = generate(smollm2, [Request("The capital of France is", max_new_tokens=3)])
    assert "Paris" in out.text


def test_seeded_sampling_is_reproducible_and_private(smollm2):
    rows = limited([chat("Tell me a story.")] * 2, 10, temperature=1.0)
    first = generate(smollm2, rows, batch_seed=7)
    torch.manual_seed(123)  # the global generator must not matter
    again = generate(smollm2, rows, batch_seed=7, top_p=1.0)
    other = generate(smollm2, rows, batch_seed=8)
    assert [c.text for c in first] == [c.text for c in again]
    assert [c.text for c in first] != [c.text for c in other]
    nucleus = generate(smollm2, rows, top_p=1e-6, batch_seed=1)
    greedy = generate(smollm2, limited(rows[:1], 10, temperature=0.0))[0]
    assert nucleus[0].text == nucleus[1].text == greedy.text  # a tiny nucleus is the argmax


def test_bad_input(smollm2):
    assert generate(smollm2, []) == []
    with pytest.raises(ValueError, match=r"requests\[1\]\.temperature is 1.0 but requests\[0\]'s is 0.0"):
        generate(smollm2, [chat("Hi"), chat("Hi", temperature=1.0)])
    with pytest.raises(ValueError, match="batch_seed must be an int <= 2147483647"):
        generate(smollm2, [chat("Hi", temperature=1.0)], batch_seed=2**31)
    with pytest.raises(ContextLengthError, match=r"requests\[1\] has \d+ tokens.*context of 8192") as error:
        generate(smollm2, [chat("Hi"), chat("word " * 9000)])
    assert error.value.row == 1


def test_a_peft_wrapped_model_generates_through_the_same_path(smollm2):
    import warnings

    peft = pytest.importorskip("peft")
    prompt = [chat("What is the capital of France?", max_new_tokens=6)]
    base = generate(smollm2, prompt)[0]
    wrapped = peft.get_peft_model(smollm2.model, peft.LoraConfig(r=1, target_modules=["q_proj"]))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*past_key_values.*")  # the cache goes by today's name
            out = generate(dataclasses.replace(smollm2, model=wrapped), prompt)[0]
    finally:
        wrapped.unload()  # give the session's model back without adapters
    assert out.text == base.text  # a fresh LoRA (B = 0) changes nothing
    assert not any("lora" in name for name, _ in smollm2.model.named_modules())
