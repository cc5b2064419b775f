"""Batched sentence log-likelihoods and next-token KL against an unbatched computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sfbow_llm.loglik import (  # noqa: E402
    mean_next_token_kl,
    next_token_log_probs,
    sentence_log_likelihoods,
    sequence_log_likelihoods,
    tokenize_sentences,
)


def unbatched(model, ids):
    """log p of ids[1:] given the prefix, one sequence at a time in float64, no padding anywhere."""
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].double(), dim=-1)
    return float(log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=101, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(2, 20), min_size=1, max_size=9), batch_size=st.integers(1, 5),
       seed=st.integers(0, 1000))
def test_batched_equals_unbatched_on_a_tiny_llama(tiny_llama, lengths, batch_size, seed):
    rng = np.random.default_rng(seed)
    sequences = [[int(t) for t in rng.integers(0, 101, n)] for n in lengths]
    scores = sequence_log_likelihoods(tiny_llama, sequences, batch_size=batch_size)
    expected = [unbatched(tiny_llama, ids) for ids in sequences]
    np.testing.assert_allclose(scores.log_likelihood, expected, rtol=0, atol=2e-4)
    assert list(scores.num_tokens) == [n - 1 for n in lengths]


def test_padding_token_value_does_not_matter(tiny_llama):
    # Token 0 is the pad filler: a sequence full of zeros next to a long one must score as it does alone.
    sequences = [[0, 0, 0], [5, 6, 7, 8, 9, 10, 11, 12]]
    together = sequence_log_likelihoods(tiny_llama, sequences, batch_size=2).log_likelihood
    alone = [sequence_log_likelihoods(tiny_llama, [s], batch_size=1).log_likelihood[0] for s in sequences]
    np.testing.assert_allclose(together, alone, atol=2e-5)


def test_kl_is_zero_to_itself_and_positive_to_another_model(tiny_llama):
    rng = np.random.default_rng(0)
    sequences = [[int(t) for t in rng.integers(0, 101, n)] for n in (3, 9, 14)]
    reference = next_token_log_probs(tiny_llama, sequences, batch_size=2, dtype=torch.float32)
    assert [r.shape for r in reference] == [(2, 101), (8, 101), (13, 101)]
    assert mean_next_token_kl(tiny_llama, sequences, reference, batch_size=3) == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(1)
    other = transformers.LlamaForCausalLM(tiny_llama.config).eval()
    assert mean_next_token_kl(other, sequences, reference) > 1e-3
    with pytest.raises(ValueError, match="one \\(len - 1, vocab\\) tensor per sequence"):
        mean_next_token_kl(other, sequences[:2], reference)


def test_bad_inputs_are_refused(tiny_llama):
    with pytest.raises(ValueError, match="empty"):
        sequence_log_likelihoods(tiny_llama, [])
    with pytest.raises(ValueError, match="sequence 1 has fewer than 2 tokens"):
        sequence_log_likelihoods(tiny_llama, [[1, 2], [3]])
    with pytest.raises(ValueError, match="batch_size"):
        sequence_log_likelihoods(tiny_llama, [[1, 2]], batch_size=0)


def test_model_training_flag_is_restored(tiny_llama):
    tiny_llama.train()
    sequence_log_likelihoods(tiny_llama, [[1, 2, 3]])
    assert tiny_llama.training
    tiny_llama.eval()


@pytest.mark.slow
def test_real_smollm2_batched_equals_unbatched(smollm2):
    sentences = ["The developer argued with the designer because she did not like the design.",
                 "A man is playing a guitar.", "Hi.", "The nurse notified the patient that his shift would be ending."]
    ids = tokenize_sentences(smollm2.tokenizer, sentences)
    assert all(row[0] == smollm2.tokenizer.bos_token_id for row in ids)
    scores = sentence_log_likelihoods(smollm2.model, smollm2.tokenizer, sentences, batch_size=3)
    np.testing.assert_allclose(scores.log_likelihood, [unbatched(smollm2.model, row) for row in ids], atol=1e-3)
    # A fluent sentence is far more likely per token than its shuffled words.
    shuffled = sentence_log_likelihoods(smollm2.model, smollm2.tokenizer,
                                        ["guitar a playing man A is."]).nll_per_token()
    assert sentence_log_likelihoods(smollm2.model, smollm2.tokenizer, sentences[1:2]).nll_per_token() < shuffled - 1
    with pytest.raises(ValueError, match="item 1"):
        tokenize_sentences(smollm2.tokenizer, ["fine", "  "])


@pytest.mark.slow
def test_plain_text_prefix_replaces_the_chat_bos(smollm2):
    """SmolLM2-Instruct's BOS is its chat-turn token; ``prefix_token_id`` scores the same sentences after
    the pretraining document separator instead, exactly, with the same tokens scored."""
    tokenizer = smollm2.tokenizer
    plain = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert plain != tokenizer.bos_token_id
    sentences = ["A man is playing a guitar.", "The nurse notified the patient that his shift would be ending."]
    ids = tokenize_sentences(tokenizer, sentences, prefix_token_id=plain)
    assert [row[0] for row in ids] == [plain, plain]
    scores = sentence_log_likelihoods(smollm2.model, tokenizer, sentences, batch_size=2, prefix_token_id=plain)
    np.testing.assert_allclose(scores.log_likelihood, [unbatched(smollm2.model, row) for row in ids], atol=1e-3)
    chat = sentence_log_likelihoods(smollm2.model, tokenizer, sentences, batch_size=2)
    assert (scores.num_tokens == chat.num_tokens).all()
    assert np.abs(scores.log_likelihood - chat.log_likelihood).max() > 0.1
