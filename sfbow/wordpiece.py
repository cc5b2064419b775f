"""A BERT-style WordPiece tokenizer in plain Python, read from a Hugging Face ``tokenizer.json``.

It reproduces what the ``tokenizers`` library gives for the one kind of tokenizer this module supports
(checked against it in the tests, on STS-B and on random text): a ``WordPiece`` model with a
``BertNormalizer`` and a ``BertPreTokenizer``, as BERT, MiniLM and most model2vec models use. Any other
kind (BPE, Unigram, other normalizers or pre-tokenizers) is refused with an error that names the file.

Steps, as in ``tokenizers``: added tokens (``[CLS]``, ``[MASK]`` ...) are cut out of the raw text first and
kept whole; the rest is normalised (``clean_text``: control characters dropped, white space made a space;
``handle_chinese_chars``: spaces around CJK ideographs; accents stripped: NFD then non-spacing marks
dropped; lower-cased character by character), split into words at white space and at every punctuation
character, and each word is split into the longest vocabulary pieces from the left (``##`` marks a piece
that continues a word). A word longer than ``max_input_chars_per_word`` or with no full split becomes the
unknown token. This module is the reference; :mod:`sfbow._native_wordpiece` is the fast path.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sfbow.errors import ModelFileError

__all__ = ["SUPPORTED", "TokenizerFileError", "WordPieceTokenizer"]

#: The one tokenizer.json kind supported: (model type, normalizer type, pre-tokenizer type).
SUPPORTED = ("WordPiece", "BertNormalizer", "BertPreTokenizer")

#: Unicode White_Space (what Rust's ``char::is_whitespace`` tests, unlike ``str.isspace``).
_WHITE_SPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                         "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


#: The longest word a tokenizer may be configured to split (BERT's is 100): a larger setting is a damaged file.
MAX_INPUT_CHARS_LIMIT = 1 << 20


class TokenizerFileError(ModelFileError):
    """A ``tokenizer.json`` that cannot be read, is damaged, or is of a kind this module does not support."""


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer: ``vocabulary`` (pieces in id order) and the normaliser options."""

    def __init__(self, vocabulary: Sequence[str], *, unk_token: str = "[UNK]", prefix: str = "##",
                 max_input_chars_per_word: int = 100, lowercase: bool = True, strip_accents: bool | None = None,
                 clean_text: bool = True, handle_chinese_chars: bool = True,
                 added_tokens: Sequence[str] = ()) -> None:
        self.vocabulary = list(vocabulary)
        self.index = {piece: i for i, piece in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary):
            raise ValueError("the vocabulary has duplicate pieces")
        if not self.vocabulary or not all(isinstance(p, str) and p for p in self.vocabulary):
            raise ValueError("the vocabulary must be a non-empty list of non-empty strings")
        for name, value in (("unk_token", unk_token), ("prefix", prefix)):
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
        if unk_token not in self.index:
            raise ValueError(f"the unknown token {unk_token!r} is not in the vocabulary")
        if type(max_input_chars_per_word) is not int or not 1 <= max_input_chars_per_word <= MAX_INPUT_CHARS_LIMIT:
            raise ValueError(f"max_input_chars_per_word must be an int in 1 .. {MAX_INPUT_CHARS_LIMIT}, "
                             f"got {max_input_chars_per_word!r}")
        for name, flag in (("lowercase", lowercase), ("clean_text", clean_text),
                           ("handle_chinese_chars", handle_chinese_chars), ("strip_accents", strip_accents)):
            if not (isinstance(flag, bool) or (flag is None and name == "strip_accents")):
                raise ValueError(f"{name} must be true or false, got {flag!r}")
        if isinstance(added_tokens, str) or not all(isinstance(t, str) and t in self.index for t in added_tokens):
            missing = added_tokens if isinstance(added_tokens, str) else [t for t in added_tokens if t not in self.index]
            raise ValueError(f"every added token must be a piece of the vocabulary; not: {missing!r}")
        self.unk_token, self.prefix = unk_token, prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        self.lowercase, self.clean_text = lowercase, clean_text
        self.strip_accents = self.lowercase if strip_accents is None else strip_accents
        self.handle_chinese_chars = handle_chinese_chars
        # Longest first, as tokenizers matches them (a leftmost-longest search over the raw text).
        self.added_tokens = sorted(set(added_tokens), key=lambda t: (-len(t), t))  # longest first; ties by text, not by hash order

    # -- reading and writing the configuration ----------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WordPieceTokenizer:
        """Read a Hugging Face ``tokenizer.json``; errors name the file and what is unsupported."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise TokenizerFileError(f"{path} is not a readable tokenizer.json: {type(exc).__name__}: {exc}") from exc
        return cls.from_json(document, source=str(path))

    @classmethod
    def from_json(cls, document: Any, *, source: str = "tokenizer.json") -> WordPieceTokenizer:
        """Build from a parsed ``tokenizer.json`` document (see :data:`SUPPORTED`), checking every field it
        uses: a damaged or unsupported document is a :class:`TokenizerFileError` naming ``source``."""
        if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
            raise TokenizerFileError(f"{source} has no 'model' object: not a Hugging Face tokenizer.json")
        model, normalizer, pre = document["model"], document.get("normalizer"), document.get("pre_tokenizer")
        normalizer, pre = normalizer or {}, pre or {}
        if not isinstance(normalizer, dict) or not isinstance(pre, dict):
            raise TokenizerFileError(f"{source}: 'normalizer' and 'pre_tokenizer' must be objects")
        kinds = (model.get("type"), normalizer.get("type"), pre.get("type"))
        if kinds != SUPPORTED:
            raise TokenizerFileError(
                f"{source}: unsupported tokenizer (model {kinds[0]!r}, normalizer {kinds[1]!r}, pre_tokenizer "
                f"{kinds[2]!r}); sfbow supports BERT-style WordPiece tokenizers only: model 'WordPiece', "
                f"normalizer 'BertNormalizer', pre_tokenizer 'BertPreTokenizer'")
        vocab = model.get("vocab")
        if (not isinstance(vocab, dict) or not vocab or not all(type(i) is int for i in vocab.values())
                or sorted(vocab.values()) != list(range(len(vocab)))):
            raise TokenizerFileError(f"{source}: model.vocab must map pieces to the ids 0 .. n-1")
        added = document.get("added_tokens") or []
        if not isinstance(added, list) or not all(isinstance(t, dict) for t in added):
            raise TokenizerFileError(f"{source}: 'added_tokens' must be a list of objects")
        contents = []
        for token in added:
            content = token.get("content")
            if token.get("normalized") or token.get("single_word") or token.get("lstrip") or token.get("rstrip"):
                raise TokenizerFileError(f"{source}: added token {content!r} uses normalized, "
                                         "single_word, lstrip or rstrip matching, which sfbow does not support")
            if not isinstance(content, str) or vocab.get(content) != token.get("id"):
                raise TokenizerFileError(f"{source}: added token {content!r} (id {token.get('id')!r}) is not that "
                                         "piece of model.vocab; sfbow needs every added token in the vocabulary")
            contents.append(content)
        pieces = sorted(vocab, key=vocab.__getitem__)
        prefix = model.get("continuing_subword_prefix")
        try:
            return cls(pieces, unk_token=model.get("unk_token", "[UNK]"), prefix="##" if prefix is None else prefix,
                       max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
                       lowercase=normalizer.get("lowercase", True), strip_accents=normalizer.get("strip_accents"),
                       clean_text=normalizer.get("clean_text", True),
                       handle_chinese_chars=normalizer.get("handle_chinese_chars", True), added_tokens=contents)
        except ValueError as exc:
            raise TokenizerFileError(f"{source}: {exc}") from None

    def options(self) -> dict[str, Any]:
        """The configuration apart from the vocabulary, as JSON-ready data (for the model file)."""
        return {"kind": "wordpiece", "unk_token": self.unk_token, "prefix": self.prefix,
                "max_input_chars_per_word": self.max_input_chars_per_word, "lowercase": self.lowercase,
                "strip_accents": self.strip_accents, "clean_text": self.clean_text,
                "handle_chinese_chars": self.handle_chinese_chars, "added_tokens": self.added_tokens}

    def to_json(self) -> dict[str, Any]:
        """A Hugging Face ``tokenizer.json`` document of this tokenizer (for ``tokenizers`` and model2vec)."""
        return {
            "version": "1.0", "truncation": None, "padding": None, "post_processor": None, "decoder": None,
            "added_tokens": [{"id": self.index[t], "content": t, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True} for t in self.added_tokens],
            "normalizer": {"type": "BertNormalizer", "clean_text": self.clean_text,
                           "handle_chinese_chars": self.handle_chinese_chars, "strip_accents": self.strip_accents,
                           "lowercase": self.lowercase},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": self.prefix,
                      "max_input_chars_per_word": self.max_input_chars_per_word, "vocab": dict(self.index)},
        }

    @classmethod
    def from_options(cls, vocabulary: Sequence[str], options: dict[str, Any]) -> WordPieceTokenizer:
        """Inverse of :meth:`options`."""
        if not isinstance(options, dict) or options.get("kind") != "wordpiece":
            kind = options.get("kind") if isinstance(options, dict) else options
            raise ValueError(f"unknown tokenizer kind {kind!r}; sfbow knows 'wordpiece'")
        known = {"unk_token", "prefix", "max_input_chars_per_word", "lowercase", "strip_accents", "clean_text",
                 "handle_chinese_chars", "added_tokens"}
        if set(options) - {"kind"} != known or not isinstance(options["added_tokens"], list):
            raise ValueError(f"the tokenizer options must be exactly {sorted(known)} (added_tokens a list), got "
                             f"{sorted(set(options) - {'kind'})}")
        return cls(vocabulary, **{k: v for k, v in options.items() if k != "kind"})

    # -- tokenising ---------------------------------------------------------------------------------

    def normalize(self, text: str) -> str:
        """The ``BertNormalizer`` steps, in the order ``tokenizers`` applies them."""
        if self.clean_text:
            text = "".join(" " if c in _WHITE_SPACE and not _is_control(c) else c
                           for c in text if not (c == "\0" or c == "\ufffd" or _is_control(c)))
        if self.handle_chinese_chars:
            text = "".join(f" {c} " if _is_cjk(c) else c for c in text)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            text = "".join(c.lower() for c in text)  # character by character: no final-sigma rule
        return text

    def words(self, text: str) -> list[str]:
        """Normalised text split at white space (dropped) and punctuation (one character each)."""
        words: list[str] = []
        current: list[str] = []
        for c in self.normalize(text):
            if c in _WHITE_SPACE or _is_punctuation(c):
                if current:
                    words.append("".join(current))
                    current = []
                if c not in _WHITE_SPACE:
                    words.append(c)
            else:
                current.append(c)
        if current:
            words.append("".join(current))
        return words

    def split_word(self, word: str) -> list[str] | None:
        """Greedy longest-match-first pieces of one word, or ``None`` when it is the unknown token."""
        if len(word) > self.max_input_chars_per_word:
            return None
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.index:
                    pieces.append(piece)
                    start = end
                    break
            else:
                return None
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Every piece of ``text``, as ``tokenizers`` gives them without special tokens (unknowns kept)."""
        pieces: list[str] = []
        for segment, is_added in self._segments(text):
            if is_added:
                pieces.append(segment)
                continue
            for word in self.words(segment):
                split = self.split_word(word)
                pieces.extend([self.unk_token] if split is None else split)
        return pieces

    def _segments(self, text: str) -> list[tuple[str, bool]]:
        """``text`` cut at the added tokens (leftmost, then longest, match): ``(segment, is_added)``."""
        if not self.added_tokens or not any(token in text for token in self.added_tokens):
            return [(text, False)]
        out, start, i = [], 0, 0
        while i < len(text):
            token = next((t for t in self.added_tokens if text.startswith(t, i)), None)
            if token is None:
                i += 1
                continue
            if start < i:
                out.append((text[start:i], False))
            out.append((token, True))
            i = start = i + len(token)
        if start < len(text):
            out.append((text[start:], False))
        return out


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _is_control(char: str) -> bool:
    """Other characters (Cc, Cf, Co, Cs) but tab, newline and carriage return; unassigned ones (Cn) are kept,
    as the ``tokenizers`` tables do."""
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    """ASCII punctuation (all of ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``) or a Unicode P* character."""
    code = ord(char)
    if code < 128:
        return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
    return unicodedata.category(char).startswith("P")
