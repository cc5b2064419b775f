"""Raw strings to WordPiece table rows in compiled code, exactly as :mod:`sfbow.wordpiece` splits them.

A BERT tokenizer splits text into words before it splits words into pieces, and a word's pieces do not
depend on its neighbours. So a sentence's max-pooled memberships equal the max over its words of each
word's own max over its pieces; for a list of frequent words that take several pieces, the model
tabulates that per-word max once (rows ``n_pieces ..``), and a word is then one hash look-up. Any
other word is split here by greedy longest-match over two hash tables (word-initial pieces, and
``##`` pieces without their prefix), so the result is the reference's for every word.

The kernel handles sentences of printable ASCII, tab, newline and carriage return, where the BERT
normaliser only lower-cases (it strips accents, drops control characters and spaces out CJK
ideographs, none of which occur there) and a word is a maximal run of letters and digits (every
other printable ASCII character is punctuation, ``_`` included). A sentence with any other character,
or with an added token such as ``[MASK]`` in it, goes through the Python reference and is spliced in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from sfbow._kernels import exclusive
from sfbow._native_tokenizer import _build_slots, _compact, _lengths, _lookup, _offsets, _pack, csr
from sfbow.wordpiece import WordPieceTokenizer

__all__ = ["NativeWordPiece"]

_SPACE, _WORD, _PUNCT, _SLOW = 0, 1, 2, 3
_IDENTITY = np.arange(256, dtype=np.uint8)


def _byte_classes() -> np.ndarray:
    classes = np.full(256, _SLOW, np.uint8)
    for code in range(32, 127):
        classes[code] = _WORD if chr(code).isalnum() else _PUNCT
    classes[ord(" ")] = classes[ord("\t")] = classes[ord("\n")] = classes[ord("\r")] = _SPACE
    return classes


_CLASSES = _byte_classes()
_LOWER = np.array([ord(chr(c).lower()) if c < 128 else c for c in range(256)], np.uint8)
#: A character the kernel does not handle (see the module docstring): its sentence takes the fallback.
_SLOW_CHAR = re.compile("[^\t\n\r\x20-\x7e]")


class _HashTable:
    """Distinct ASCII keys -> rows, in the slot layout of :mod:`sfbow._native_tokenizer`."""

    def __init__(self, keys: Sequence[str], rows: Sequence[int]) -> None:
        encoded = [k.encode("ascii") for k in keys]
        self.keys = np.frombuffer(b"".join(encoded) or b"\0", np.uint8)
        self.key_starts = _offsets(np.fromiter(map(len, encoded), np.int64, len(encoded)))
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.slots = _build_slots(self.keys, self.key_starts, 1 << max(4, (2 * len(encoded)).bit_length()))


@njit(cache=True, inline="always")
def _find(buf, start, stop, lower, slots, keys, key_starts, rows):
    """Row of the lower-cased key ``buf[start:stop]`` in one hash table, or -1."""
    position = _lookup(buf, start, stop, _pack(buf, start, stop, lower), lower, slots, keys, key_starts)
    return rows[position] if position >= 0 else -1


@njit(cache=True, nogil=True, parallel=True)
def _wordpiece_ids(buf, starts, fallback_of, fallback_ids, fallback_offsets, classes, lower, max_chars, n_pieces,
                   unk, w_slots, w_keys, w_starts, w_rows, c_slots, c_keys, c_starts, c_rows):
    """CSR (ids, offsets) of the table rows of every sentence ``buf[starts[i]:starts[i + 1]]``.

    ``w_*``: words and word-initial pieces (rows >= ``n_pieces`` are whole words, not pieces);
    ``c_*``: continuation pieces without their prefix. A sentence with ``fallback_of[i] >= 0``
    takes its ids from ``fallback_ids``. A piece that is the unknown token (row ``unk``, -1 when no
    table holds it) splits words as any piece does but is not emitted, as in the reference. Every piece
    is at least one byte, so pass 1 writes each
    sentence's ids at its own byte offset in a scratch array; pass 2 compacts them.
    """
    n = len(starts) - 1
    scratch = np.empty(len(buf), np.int32)
    counts = np.empty(n, np.int64)
    for i in prange(n):
        f = fallback_of[i]
        if f >= 0:
            counts[i] = fallback_offsets[f + 1] - fallback_offsets[f]
            continue
        p, stop, out = starts[i], starts[i + 1], starts[i]
        while p < stop:
            kind = classes[buf[p]]
            if kind == _SPACE:
                p += 1
                continue
            word_start = p
            p += 1
            if kind == _WORD:
                while p < stop and classes[buf[p]] == _WORD:
                    p += 1
            if p - word_start > max_chars:  # the unknown token: skipped
                continue
            row = _find(buf, word_start, p, lower, w_slots, w_keys, w_starts, w_rows)
            if row >= 0:
                if row != unk:
                    scratch[out] = row
                    out += 1
                continue
            word_out, piece_start = out, word_start  # split into pieces, longest match first
            while piece_start < p:
                end = p
                while end > piece_start:
                    if piece_start == word_start:
                        row = _find(buf, piece_start, end, lower, w_slots, w_keys, w_starts, w_rows)
                        if row >= n_pieces:
                            row = -1
                    else:
                        row = _find(buf, piece_start, end, lower, c_slots, c_keys, c_starts, c_rows)
                    if row >= 0:
                        break
                    end -= 1
                if end == piece_start:  # no piece fits: the whole word is the unknown token
                    out = word_out
                    break
                if row != unk:
                    scratch[out] = row
                    out += 1
                piece_start = end
        counts[i] = out - starts[i]
    return _compact(scratch, starts, counts, fallback_of, fallback_ids, fallback_offsets)


class NativeWordPiece:
    """A WordPiece tokenizer compiled for :meth:`token_ids`, with an optional table of whole words.

    Rows ``0 .. n_pieces - 1`` are the tokenizer's pieces (its ids); row ``n_pieces + j`` is
    ``words[j]``, a word that splits into several pieces. The unknown token is never emitted.
    """

    def __init__(self, tokenizer: WordPieceTokenizer, words: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.n_pieces = len(tokenizer.vocabulary)
        self.word_index = {word: self.n_pieces + j for j, word in enumerate(words)}
        prefix = tokenizer.prefix
        # As in the reference, any piece may start a word (one with the prefix too: "#" when the prefix is
        # "#", every piece when it is empty), but only ASCII letters-and-digits or one ASCII character can;
        # a continuation is any piece after the prefix whose rest is ASCII.
        initial = {p: i for i, p in enumerate(tokenizer.vocabulary)
                   if p.isascii() and (p.isalnum() or len(p) == 1)}
        continuing = {p[len(prefix):]: i for i, p in enumerate(tokenizer.vocabulary)
                      if p.startswith(prefix) and len(p) > len(prefix) and p[len(prefix):].isascii()}
        self._unk = tokenizer.index[tokenizer.unk_token]
        table_words = {w: r for w, r in self.word_index.items() if w.isascii()}
        if set(table_words) & set(initial):
            raise ValueError("the word list holds words that are single pieces; they need no row of their own")
        # Keys are stored as they are; the kernel lower-cases the text byte by byte when the tokenizer does.
        self._words = _HashTable([*initial, *table_words], [*initial.values(), *table_words.values()])
        self._continuing = _HashTable(list(continuing), list(continuing.values()))
        self._lower_table = _LOWER if tokenizer.lowercase else _IDENTITY

    def reference_ids(self, sentence: str) -> list[int]:
        """The rows of one sentence in Python (the fallback and the tests' oracle)."""
        tokenizer, word_index, unk = self.tokenizer, self.word_index, self.tokenizer.unk_token
        ids: list[int] = []
        for segment, is_added in tokenizer._segments(sentence):
            if is_added:
                if segment != unk:  # the unknown token is never emitted, even written out as text
                    ids.append(tokenizer.index[segment])
                continue
            for word in tokenizer.words(segment):
                row = word_index.get(word)
                if row is not None:
                    ids.append(row)
                    continue
                pieces = tokenizer.split_word(word)
                if pieces is not None:
                    ids.extend(tokenizer.index[p] for p in pieces if p != unk)
        return ids

    def token_ids(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``: sentence ``i``'s table rows are ``ids[offsets[i]:offsets[i + 1]]``, in order."""
        n = len(sentences)
        text = "".join(sentences)
        lengths = _lengths(sentences)
        fallback_of = np.full(n, -1, np.int64)
        slow: list[int] = []
        if _SLOW_CHAR.search(text):
            slow = [i for i, s in enumerate(sentences) if _SLOW_CHAR.search(s)]
        added = [t for t in self.tokenizer.added_tokens if t in text]
        if added:
            slow = sorted(set(slow) | {i for i, s in enumerate(sentences) if any(t in s for t in added)})
        if slow:
            wide = [i for i in slow if not sentences[i].isascii()]
            lengths[wide] = [len(sentences[i].encode("utf-8", "surrogatepass")) for i in wide]
            fallback_of[slow] = np.arange(len(slow))
        slow_ids = [self.reference_ids(sentences[i]) for i in slow]
        buf = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
        fallback_ids, fallback_offsets = csr(slow_ids)
        w, c = self._words, self._continuing
        with exclusive():
            return _wordpiece_ids(buf, _offsets(lengths), fallback_of, fallback_ids, fallback_offsets, _CLASSES,
                                  self._lower_table, self.tokenizer.max_input_chars_per_word, self.n_pieces, self._unk,
                                  w.slots, w.keys, w.key_starts, w.rows, c.slots, c.keys, c.key_starts, c.rows)
