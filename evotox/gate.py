"""The validity gate: is a parsed generator reply a rewrite worth a SUT query?

A small generator often replies with something that parses but is no rewrite: a template echo
(``<answer>``), a bare label (``Rewrite:``), a chain of letters (``A: B: C``), an echo of its own
instruction (``The chatbot's answer to the question below was rated 0.12 ...``), a fragment (``Lying.``),
a reply that loops (``How to crack a password? - How to crack a password?``), or a statement or answer
instead of a question. Every such reply that reaches the SUT wastes a query, and
if its answer scores higher than the parent's, the search goes on evolving junk instead of the seed's
question. The gate runs on the parsed reply, before any SUT query, in two parts:

1. **Form** (:func:`form_problem`, cheap rules): natural language, at least three words, no tags, not a
   label, letter chain or list, no five words repeated in a row (a decoding loop), no talk about the
   rewriting task itself (words and 4-grams of the generator's
   instruction that the parent does not contain), and a question (``?``) or a request (an interrogative or
   auxiliary first word, or an imperative verb first).
2. **Topic** (:meth:`Gate.check`): the sfbow fuzzy Jaccard similarity (default GloVe model) of the rewrite's
   content words (function words removed: with them, "What is the capital of France?" scores 0.64 against
   "How can I hide my assets from the government?", 0.41 without) to those of the seed and of the parent;
   the smaller of the two must reach ``threshold`` (``SearchConfig.
   relevance_threshold``; chosen on real generator replies, see ``docs/evotox.md``).

A rejected reply is treated like an unparsable one: asked again, counted as a generator failure, and the
slot keeps its parent after its attempts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["Gate", "Verdict", "content_words", "form_problem"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_LIST_ITEM = re.compile(r"(?:^|[:.?!]\s+)(?:\d{1,2}[.)]|[-*\u2022])\s")  # an item after a start, colon or stop
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,40}>")
#: A run of this many words that occurs twice is a decoding loop (four would catch "to lie to a ...").
_LOOP_WORDS = 5
# Words a rewrite only uses when it talks about the rewriting task rather than asking the question.
_SCORE = re.compile(r"\b[01]?\.\d\d\b")  # a toxicity score as the feedback wording shows it (0.12)
_META_WORDS = frozenset({"rewrite", "rewrites", "rewritten", "rewriting", "re-write", "re-written", "rephrase",
                         "rephrased", "edit", "edited", "chatbot", "chatbot's", "rated", "rating", "toxicity"})
_META_PHRASES = ("your question", "this question", "the question", "the answer", "this answer", "your answer",
                 "the rewritten", "here's a", "here is a")
_QUESTION_STARTS = frozenset((
    "how", "what", "why", "when", "where", "who", "whom", "whose", "which", "is", "are", "am", "was", "were",
    "do", "does", "did", "can", "could", "would", "will", "should", "shall", "may", "might", "must", "have",
    "has", "had"))
_REQUEST_STARTS = frozenset((
    "tell", "explain", "describe", "give", "write", "list", "create", "make", "help", "show", "suggest",
    "provide", "name", "share", "teach", "find", "design", "generate", "outline", "compose", "draft", "argue",
    "convince", "persuade", "imagine", "pretend", "please", "let", "compare", "discuss", "justify", "plan",
    "build", "develop", "offer", "recommend", "use", "say", "state", "identify", "detail", "summarize",
    "summarise", "rank", "predict", "evaluate"))
_FUNCTION_WORDS = frozenset((
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "is",
    "are", "was", "were", "be", "been", "being", "do", "does", "did", "can", "could", "would", "will", "should",
    "shall", "may", "might", "must", "have", "has", "had", "i", "you", "he", "she", "it", "we", "they", "me", "my",
    "your", "his", "her", "its", "our", "their", "them", "this", "that", "these", "those", "what", "which", "who",
    "whom", "whose", "how", "why", "when", "where", "there", "here", "so", "not", "no", "than", "too", "very",
    "just", "about", "into", "over", "under", "again", "then", "once", "all", "any", "both", "each", "few", "more",
    "most", "other", "some", "such", "only", "own", "same", "now"))
_SUBJECT_REQUESTS = ("i want", "i need", "i would like", "i'd like", "i wish")


@lru_cache(maxsize=1)
def _instruction_ngrams() -> frozenset[tuple[str, ...]]:
    """The 4-grams of every generator instruction (what an echo of the instruction shares with it)."""
    from evotox import prompts

    text = " ".join([prompts.GENERATOR_SYSTEM_PROMPT, prompts._REWRITE, prompts._INFORMED, prompts._MEMORY_HEAD])
    return frozenset(_ngrams(_words(text), 4))


@lru_cache(maxsize=1)
def _category_answers() -> frozenset[tuple[str, ...]]:
    """``(category, "answer")`` for the default categories: the instruction asks for "a more {category} answer"."""
    from evotox.prompts import DEFAULT_CATEGORIES

    return frozenset((category.casefold(), "answer") for category in DEFAULT_CATEGORIES)


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def content_words(text: str) -> str:
    """``text`` without its function words (all of it when nothing else is left): what the topic check compares."""
    kept = [w for w in _words(text) if w not in _FUNCTION_WORDS]
    return " ".join(kept) if kept else text


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _repeated_runs(words: Sequence[str]) -> set[tuple[str, ...]]:
    """The runs of :data:`_LOOP_WORDS` words that occur more than once in ``words``."""
    seen: set[tuple[str, ...]] = set()
    repeated: set[tuple[str, ...]] = set()
    for i in range(len(words) - _LOOP_WORDS + 1):
        run = tuple(words[i:i + _LOOP_WORDS])
        (repeated if run in seen else seen).add(run)
    return repeated


def form_problem(text: str, parent: str) -> str | None:
    """Why ``text`` is not a well-formed rewrite of ``parent`` (``"tag"``, ``"label"``, ``"letters"``,
    ``"not language"``, ``"list"``, ``"fragment"``, ``"repetition"``, ``"echo"``, ``"not a question"``), or
    ``None`` when it is one."""
    stripped = text.strip()
    if _TAG.search(stripped):
        return "tag"
    if stripped.endswith(":"):
        return "label"
    tokens = stripped.split()
    if not tokens:
        return "fragment"
    short = sum(1 for t in tokens if len(t.strip(":.,;)(-")) <= 1)
    if short * 2 >= len(tokens):
        return "letters"
    letters = sum(c.isalpha() for c in stripped)
    if letters < 0.6 * sum(not c.isspace() for c in stripped):
        return "not language"
    if len(_LIST_ITEM.findall(stripped)) >= 2:
        return "list"  # asked for one question, it wrote a list (of copies, or an answer)
    words = _words(stripped)
    if len(words) < 3:
        return "fragment"
    parent_list = _words(parent)
    if _repeated_runs(words) - _repeated_runs(parent_list):
        return "repetition"  # the same five words twice: a decoding loop, not a question
    parent_words = set(parent_list)
    lowered = " ".join(words)
    parent_lowered = " ".join(parent_list)
    scores = set(_SCORE.findall(stripped)) - set(_SCORE.findall(parent))
    if scores or any(w in _META_WORDS and w not in parent_words for w in words):
        return "echo"  # talks about the task, or repeats the rating it was told
    if any(p in lowered and p not in parent_lowered for p in _META_PHRASES):
        return "echo"
    if (_ngrams(words, 4) & _instruction_ngrams()) - _ngrams(parent_list, 4):
        return "echo"
    if (_ngrams(words, 2) & _category_answers()) - _ngrams(parent_list, 2):
        return "echo"  # "... is a homophobic answer": the instruction's "a more {category} answer" echoed
    first = words[0]
    if not (stripped.endswith("?") or first in _QUESTION_STARTS or first in _REQUEST_STARTS
            or lowered.startswith(_SUBJECT_REQUESTS)):
        return "not a question"
    return None


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one rewrite: ``reason`` is ``None`` when accepted, else why not (a form
    problem or ``"off topic"``); the similarities are ``None`` when the form check already failed."""

    reason: str | None
    seed_similarity: float | None = None
    parent_similarity: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.reason, "seed_similarity": self.seed_similarity,
                "parent_similarity": self.parent_similarity}


class Gate:
    """Form rules plus the sfbow topic check at ``threshold`` (fuzzy Jaccard, in [0, 1]); ``model`` is an
    sfbow model (default: :func:`sfbow.default_model`, loaded on first use)."""

    def __init__(self, threshold: float, model: object | None = None) -> None:
        from sfbow_common.checks import check_real

        self.threshold = check_real(threshold, "relevance threshold", minimum=0.0, maximum=1.0)
        self._model = model

    def similarities(self, texts: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Fuzzy Jaccard similarity of each text's content words to its reference's (one sfbow pass)."""
        import sfbow

        if self._model is None:
            self._model = sfbow.default_model()
        contents = [content_words(t) for t in list(texts) + list(references)]
        vectors = np.asarray(self._model.encode(contents), dtype=np.float64)  # type: ignore[attr-defined]
        return np.asarray(sfbow.paired_fuzzy_jaccard(vectors[:len(texts)], vectors[len(texts):]), dtype=float)

    def check(self, text: str, *, seed: str, parent: str) -> Verdict:
        """The verdict on ``text`` as a rewrite of ``parent`` in the search of ``seed``."""
        problem = form_problem(text, parent)
        if problem is not None:
            return Verdict(problem)
        to_seed, to_parent = (float(v) for v in self.similarities([text, text], [seed, parent]))
        reason = None if min(to_seed, to_parent) >= self.threshold else "off topic"
        return Verdict(reason, round(to_seed, 6), round(to_parent, 6))
