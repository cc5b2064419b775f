"""Raw strings to vocabulary ids without Python per-token work: the default tokeniser in Numba.

:func:`sfbow.tokenization.tokenize` followed by a dict look-up costs about 8 µs a sentence in
Python, more than everything else in encoding. This module does the same job in compiled code:

* the batch is joined into one buffer (one ``str.join`` and one ``str.encode``, both C loops);
* a Numba kernel splits each sentence into ``\\w+`` runs and single non-space characters,
  lower-cases on the fly and looks every token up in an open-addressing hash table of the
  vocabulary (linear probing; a slot holds a key's first 8 bytes, its row and length, so most
  look-ups read one cache line: measured 2x faster than slots that point into a key buffer),
  skipping unknown tokens.

Exactness: Python's ``\\w``, ``\\s`` and ``str.lower()`` are Unicode-aware (``"İ".lower()`` has two
characters; ``"Σ"`` lower-cases by context). The kernel is exact for ASCII and for non-ASCII
characters that are one-character tokens left alone by lower-casing (curly quotes, dashes, currency
signs: see :func:`_simple`), each looked up by its UTF-8 bytes. A sentence with any other character
(accented letters, other scripts, non-ASCII spaces), or one that Unicode NFC would change (a
combining accent after a letter, a character with a singleton decomposition such as the Greek
question mark), is tokenised by the Python reference instead and spliced in (the kernel skips its
bytes); every other sentence is already in NFC, so the kernel's rule is the reference's. In English text they are rare (0.3 % of STS-B).
The ASCII character classes are derived from Python's own ``re`` module at import, so
``\\x1c``-``\\x1f`` count as whitespace and ``_`` as a word character exactly as in
:data:`sfbow.tokenization.TOKEN_PATTERN`.

Threads: the kernel runs ``prange`` over sentences without the GIL, inside
:func:`sfbow._kernels.exclusive`; the caller sets the thread count with :func:`numba.set_num_threads`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence, Sized

import numpy as np
from numba import njit, prange

from sfbow._kernels import _pool_into, exclusive, max_into
from sfbow.tokenization import NORMALIZATION, tokenize

__all__ = ["NativeVocabulary"]

_SPACE, _WORD, _OTHER, _WIDE = 0, 1, 2, 3
_MULTIPLIER = np.int64(-7046029254386353131)  # 0x9e3779b97f4a7c15 (golden ratio) as a signed 64-bit integer
_EMPTY = -1


def _byte_tables() -> tuple[np.ndarray, np.ndarray]:
    """Class and lower-case code of every byte: ASCII as Python's ``re``/``str`` see it.

    A byte above 127 starts (or continues) a UTF-8 character: ``_WIDE``, lower-cased as itself;
    the kernel only meets characters that :func:`_simple` accepted. Vocabulary keys are UTF-8 and
    hashed with the same code, hence all 256 values.
    """
    classes = np.full(256, _WIDE, np.uint8)
    lower = np.arange(256, dtype=np.uint8)
    for code in range(128):
        char = chr(code)
        if re.fullmatch(r"\s", char):
            classes[code] = _SPACE
        elif re.fullmatch(r"\w", char):
            classes[code] = _WORD
        else:
            classes[code] = _OTHER
        lower[code] = ord(char.lower())
    return classes, lower


_CLASSES, _LOWER = _byte_tables()
_ASCII = frozenset(map(chr, range(128)))
_SINGLE = re.compile(r"[^\w\s]")
_SIMPLE: dict[str, bool] = {}


def _simple(char: str) -> bool:
    """Whether the kernel tokenises a non-ASCII ``char`` exactly: a one-character token (neither
    ``\\w`` nor ``\\s``) that lower-casing leaves alone, like ``’ “ — £``. Cached per character."""
    simple = _SIMPLE.get(char)
    if simple is None:
        simple = _SIMPLE[char] = _SINGLE.fullmatch(char) is not None and char.lower() == char
    return simple
_IDENTITY = np.arange(256, dtype=np.uint8)


@njit(cache=True, inline="always")
def _pack(buf, start, stop, lower):
    """Up to 8 lower-cased bytes ``buf[start:stop]``, little-endian in one integer (zero-padded)."""
    word = np.int64(0)
    for p in range(start, min(stop, start + 8)):
        word |= np.int64(lower[buf[p]]) << (8 * (p - start))
    return word


@njit(cache=True, inline="always")
def _hash(buf, start, stop, lower, head):
    """Hash of the lower-cased bytes ``buf[start:stop]`` whose first 8 are packed in ``head``.

    Multiply-xorshift over 8-byte words (wrapping 64-bit arithmetic): one step for most words.
    """
    h = (np.int64(stop - start) ^ head) * _MULTIPLIER
    h ^= h >> 32
    for p in range(start + 8, stop, 8):
        h = (h ^ _pack(buf, p, stop, lower)) * _MULTIPLIER
        h ^= h >> 32
    return h


@njit(cache=True)
def _build_slots(keys, key_starts, n_slots):
    """Open-addressing table over the keys ``keys[key_starts[r]:key_starts[r + 1]]`` (distinct).

    Row ``j`` of the result is one slot: (first 8 key bytes packed, ``r * 256 + min(length, 255)``),
    or (0, -1) if empty. Comparing a token against a slot needs no other memory for keys of up to
    8 bytes, so most look-ups touch one cache line. Keys go in row order, so with rows in
    frequency order the frequent words sit in their home slot.
    """
    slots = np.zeros((n_slots, 2), np.int64)
    slots[:, 1] = _EMPTY
    mask = n_slots - 1
    for r in range(len(key_starts) - 1):
        start, stop = key_starts[r], key_starts[r + 1]
        head = _pack(keys, start, stop, _IDENTITY)
        j = _hash(keys, start, stop, _IDENTITY, head) & mask
        while slots[j, 1] != _EMPTY:
            j = (j + 1) & mask
        slots[j, 0] = head
        slots[j, 1] = r * 256 + min(stop - start, 255)
    return slots


@njit(cache=True, inline="always")
def _lookup(buf, start, stop, head, lower, slots, keys, key_starts):
    """Row of the lower-cased token ``buf[start:stop]`` (first 8 bytes packed in ``head``), or -1."""
    mask = len(slots) - 1
    length = stop - start
    tag = min(length, 255)
    j = _hash(buf, start, stop, lower, head) & mask
    while True:
        info = slots[j, 1]
        if info == _EMPTY:
            return -1
        if slots[j, 0] == head and info & 255 == tag:
            row = info >> 8
            if length <= 8:
                return row
            key_start = key_starts[row]
            same = key_starts[row + 1] - key_start == length
            p = 8
            while same and p < length:
                same = keys[key_start + p] == lower[buf[start + p]]
                p += 1
            if same:
                return row
        j = (j + 1) & mask


@njit(cache=True, inline="always")
def _next_token(buf, p, stop, classes, lower, slots, keys, key_starts):
    """``(row, end)`` of the first token at or after ``buf[p]`` (row -1: unknown, or no token before ``stop``)."""
    while p < stop and classes[buf[p]] == _SPACE:
        p += 1
    if p == stop:
        return -1, stop
    kind = classes[buf[p]]
    token_start = p
    head = np.int64(lower[buf[p]])
    p += 1
    if kind == _WORD:  # pack the first 8 bytes while scanning (10 % faster than re-reading)
        shift = 8
        while p < stop and classes[buf[p]] == _WORD:
            if shift < 64:
                head |= np.int64(lower[buf[p]]) << shift
                shift += 8
            p += 1
    elif kind == _WIDE:  # the rest of this character's UTF-8 bytes: a token on its own
        while p < stop and (buf[p] & 0xC0) == 0x80:
            p += 1
        head = _pack(buf, token_start, p, lower)
    return _lookup(buf, token_start, p, head, lower, slots, keys, key_starts), p


@njit(cache=True, nogil=True, parallel=True)
def _token_ids(buf, starts, fallback_of, fallback_ids, fallback_offsets,
               classes, lower, slots, keys, key_starts):
    """CSR (ids, offsets) of known tokens for every sentence ``buf[starts[i]:starts[i + 1]]``.

    Sentence ``i`` with ``fallback_of[i] >= 0`` is not scanned: its ids are taken from
    ``fallback_ids[fallback_offsets[f]:fallback_offsets[f + 1]]`` with ``f = fallback_of[i]``.
    A sentence has at most as many tokens as characters, so pass 1 writes each sentence's ids
    at its own character offset in a scratch array (no shared counter, safe under ``prange``);
    pass 2 compacts them.
    """
    n = len(starts) - 1
    scratch = np.empty(len(buf), np.int32)
    counts = np.empty(n, np.int64)
    for i in prange(n):
        f = fallback_of[i]
        if f >= 0:
            counts[i] = fallback_offsets[f + 1] - fallback_offsets[f]
            continue
        p = starts[i]
        stop = starts[i + 1]
        out = p
        while p < stop:
            row, p = _next_token(buf, p, stop, classes, lower, slots, keys, key_starts)
            if row >= 0:
                scratch[out] = row
                out += 1
        counts[i] = out - starts[i]
    return _compact(scratch, starts, counts, fallback_of, fallback_ids, fallback_offsets)


@njit(cache=True, nogil=True, parallel=True)
def _pool_tokens(buf, starts, fallback_of, fallback_ids, fallback_offsets,
                 classes, lower, slots, keys, key_starts, table, out):
    """``out[i] = max over the known tokens of sentence i of table[row]`` (zeros if none), in one pass:
    :func:`_token_ids` and :func:`sfbow._kernels.max_pool` fused, so no id array is written or read.
    ``table`` and ``out`` share a dtype (float32, or the uint16 bits of a non-negative float16 table)."""
    for i in prange(len(starts) - 1):
        acc = out[i]
        f = fallback_of[i]
        if f >= 0:
            if fallback_offsets[f] == fallback_offsets[f + 1]:
                acc[:] = 0
            else:
                _pool_into(acc, table, fallback_ids, fallback_offsets[f], fallback_offsets[f + 1])
            continue
        empty = True
        p = starts[i]
        stop = starts[i + 1]
        while p < stop:
            row, p = _next_token(buf, p, stop, classes, lower, slots, keys, key_starts)
            if row >= 0:
                if empty:
                    acc[:] = table[row]
                    empty = False
                else:
                    max_into(acc, table[row])
        if empty:
            acc[:] = 0


@njit(cache=True, nogil=True, parallel=True)
def _compact(scratch, starts, counts, fallback_of, fallback_ids, fallback_offsets):
    """Pass 2 of the tokenising kernels: CSR ``(ids, offsets)`` from each sentence's ``counts[i]`` ids at
    ``scratch[starts[i]:]``, or, for ``f = fallback_of[i] >= 0``, from ``fallback_ids`` (its Python ids)."""
    n = len(counts)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + counts[i]
    ids = np.empty(offsets[n], np.int64)
    for i in prange(n):
        f = fallback_of[i]
        if f >= 0:
            ids[offsets[i]:offsets[i + 1]] = fallback_ids[fallback_offsets[f]:fallback_offsets[f + 1]]
        else:
            ids[offsets[i]:offsets[i + 1]] = scratch[starts[i]:starts[i] + counts[i]]
    return ids, offsets


class NativeVocabulary:
    """A vocabulary compiled for :meth:`token_ids`: the default tokeniser plus look-up, in Numba.

    ``index`` maps each word to its row, the rows being ``0 .. len(index) - 1`` (as in
    :class:`sfbow.vectors.WordVectors`). Every word is stored as UTF-8; only ASCII ones can match,
    since the compiled path sees ASCII sentences only and the rest go through ``index`` in Python.
    """

    def __init__(self, index: Mapping[str, int]) -> None:
        """Build the hash table of ``index`` (word -> row); about 0.1 s for 400,000 words."""
        self.index = index
        words = list(index)
        rows = np.fromiter(index.values(), np.int64, len(words))
        order = np.argsort(rows, kind="stable")
        if not np.array_equal(rows[order], np.arange(len(words))):
            raise ValueError("index must map its words to the distinct rows 0 .. len(index) - 1")
        if not np.array_equal(order, np.arange(len(words))):  # not in row order (WordVectors is)
            words = [words[i] for i in order]
        lengths = _lengths(words)
        wide = [r for r, w in enumerate(words) if not w.isascii()]
        lengths[wide] = [len(words[r].encode("utf-8", "surrogatepass")) for r in wide]
        self._keys = np.frombuffer("".join(words).encode("utf-8", "surrogatepass"), np.uint8)
        self._key_starts = _offsets(lengths)
        n_slots = 1 << max(4, (2 * len(words)).bit_length())  # load factor <= 0.5
        self._slots = _build_slots(self._keys, self._key_starts, n_slots)

    def token_ids(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the known tokens of each sentence, as ``sfbow.tokenization.tokenize`` + ``index`` give them.

        Returns ``(ids, offsets)``: int64 arrays, sentence ``i``'s ids are
        ``ids[offsets[i]:offsets[i + 1]]`` in token order, unknown tokens skipped. The Python part
        (joining and encoding the strings) holds the GIL; the kernel releases it.
        """
        with exclusive():
            return _token_ids(*self._prepare(sentences), _CLASSES, _LOWER, self._slots, self._keys, self._key_starts)

    def max_pool(self, sentences: Sequence[str], table: np.ndarray, out: np.ndarray) -> None:
        """``out[i]`` = the element-wise max of ``table``'s rows of sentence ``i``'s known tokens (zeros if
        none): what :meth:`token_ids` then :func:`sfbow._kernels.max_pool` give, in one kernel that writes
        no ids. ``table`` and ``out`` (one row per sentence) share a dtype: float32, or the uint16 bits of
        a non-negative float16 table."""
        with exclusive():
            _pool_tokens(*self._prepare(sentences), _CLASSES, _LOWER, self._slots, self._keys, self._key_starts,
                         table, out)

    def _prepare(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kernels' view of a batch: its UTF-8 buffer, each sentence's byte offsets, and the ids of the
        sentences the kernels cannot tokenise exactly (computed here in Python, see the module docstring)."""
        n = len(sentences)
        text = "".join(sentences)
        lengths = _lengths(sentences)
        fallback_of = np.full(n, -1, np.int64)
        slow_ids: list[list[int]] = []
        if not text.isascii():
            # Lengths of non-ASCII sentences become UTF-8 byte counts (surrogatepass: lone
            # surrogates are valid str items). Those with a character the kernel cannot lower-case
            # or classify exactly, or that NFC would change, are tokenised in Python; the kernel
            # skips their bytes. (ASCII text is always in NFC.)
            wide = np.flatnonzero(~np.fromiter(map(str.isascii, sentences), bool, n)).tolist()
            lengths[wide] = [len(sentences[i].encode("utf-8", "surrogatepass")) for i in wide]
            slow = [i for i in wide if not all(map(_simple, set(sentences[i]) - _ASCII))
                    or not unicodedata.is_normalized(NORMALIZATION, sentences[i])]
            fallback_of[slow] = np.arange(len(slow))
            index = self.index
            slow_ids = [[index[t] for t in tokenize(sentences[i]) if t in index] for i in slow]
        buf = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
        fallback_ids, fallback_offsets = csr(slow_ids)
        return buf, _offsets(lengths), fallback_of, fallback_ids, fallback_offsets


def csr(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, offsets)`` int64 arrays of a list of id lists (row ``i`` is ``ids[offsets[i]:offsets[i + 1]]``)."""
    offsets = _offsets(_lengths(rows))
    return np.fromiter((r for row in rows for r in row), np.int64, offsets[-1]), offsets


def _lengths(items: Sequence[Sized]) -> np.ndarray:
    """``len`` of every item, as an int64 array."""
    return np.fromiter(map(len, items), np.int64, len(items))


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """CSR offsets (0, then the running sum) of consecutive pieces of the given lengths."""
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
