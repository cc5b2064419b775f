"""The word2vec/GloVe readers against damaged, crafted and unusual files: clear errors naming the
file (and line), no silent loss, no allocation beyond what the file holds."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbow import WordVectors
from sfbow.universe import build_universe
from sfbow.vectors import as_word_vectors

from .limited import run_limited

WORDS = ["x", "y", "zed", "naïve"]
MATRIX = np.array([[1.0, 2.0], [3.0, -4.0], [0.5, 0.25], [-1e-3, 7.0]], dtype=np.float32)


def _binary(words=WORDS, matrix=MATRIX, *, newline=False, header=None):
    """A word2vec binary file: gensim writes no newline after a vector, word2vec's C tool does."""
    rows = [(w if isinstance(w, bytes) else w.encode()) + b" " + np.asarray(v, "<f4").tobytes() + (b"\n" if newline else b"") for w, v in zip(words, matrix)]
    head = header if header is not None else f"{len(words)} {matrix.shape[1]}\n".encode()
    return head + b"".join(rows)


@pytest.mark.parametrize("newline", [False, True])
def test_binary_reader_reads_gensim_and_word2vec_layouts(tmp_path, newline):
    path = tmp_path / "v.bin"
    path.write_bytes(_binary(newline=newline))
    vectors = WordVectors.from_file(path, binary=True)
    assert vectors.words == WORDS
    np.testing.assert_array_equal(vectors.matrix, MATRIX)
    assert WordVectors.from_file(path, binary=True, limit=2).words == WORDS[:2]
    assert as_word_vectors(str(path)).words == WORDS  # .bin means binary


def test_binary_reader_agrees_with_gensim_on_a_gensim_file(tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    kv = KeyedVectors(7)
    kv.add_vectors([f"w{i}é" for i in range(50)], rng.standard_normal((50, 7)).astype(np.float32))
    kv.save_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    ours = WordVectors.from_file(tmp_path / "g.bin", binary=True)
    theirs = KeyedVectors.load_word2vec_format(str(tmp_path / "g.bin"), binary=True)
    assert ours.words == list(theirs.index_to_key)
    np.testing.assert_array_equal(ours.matrix, theirs.vectors)


@pytest.mark.parametrize(("content", "message"), [
    (_binary(header=b"3000000000 4\n"), "announces 3000000000 words of dim 4, which need at least"),
    (_binary(header=b"3 4000000000\n"), "announces 3 words of dim 4000000000"),
    (_binary(header=b"\xef\xbb\xbf5 2\n"), "announces 5 words"),
    (_binary(header=b"0 2\n"), "starts with a line '<count> <dim>'"),
    (_binary(header=b"4 x\n"), "starts with a line"),
    (b"", "is empty"),
    (_binary(header=b"3 2\n"), "bytes follow the 3 vectors"),
    (_binary(["x", "y", "x", "q"]), "v.bin: words has a duplicate: 'x' at rows 0 and 2"),
    (_binary([b"x", b"\xff", b"y", b"z"]), "word 1 \\(byte 14\\) is not valid UTF-8"),
    (_binary(matrix=np.array([[np.nan, 0]] * 4)), "v.bin: matrix has NaN or inf"),
    (_binary()[:-3], "the vector of word 3 \\('naïve'\\) is cut off"),
])
def test_bad_binary_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "v.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        WordVectors.from_file(path, binary=True)
    assert str(path) in str(caught.value)


def test_a_binary_bom_header_is_read(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"\xef\xbb\xbf" + _binary())
    assert WordVectors.from_file(path, binary=True).words == WORDS


def test_binary_truncation_at_every_offset_is_a_value_error(tmp_path):
    data = _binary(newline=True)
    path = tmp_path / "t.bin"
    for size in range(len(data) - 1):  # the last byte is word2vec's optional final newline
        path.write_bytes(data[:size])
        with pytest.raises(ValueError):
            WordVectors.from_file(path, binary=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**4), st.integers(1, 255)), min_size=1, max_size=6))
def test_damaged_binary_files_give_a_value_error_or_a_bounded_result(tmp_path, flips):
    data = bytearray(_binary())
    for offset, mask in flips:
        data[offset % len(data)] ^= mask
    path = tmp_path / "d.bin"
    path.write_bytes(data)
    try:
        vectors = WordVectors.from_file(path, binary=True)
    except ValueError:
        return
    assert vectors.matrix.nbytes <= len(data) and np.isfinite(vectors.matrix).all()


def test_crafted_binary_headers_allocate_nothing_under_a_memory_cap(tmp_path):
    paths = {}
    for name, header in (("count", b"3000000000 4\n"), ("dim", b"3 4000000000\n"), ("both", b"99999999999 99999\n")):
        paths[name] = tmp_path / f"{name}.bin"
        paths[name].write_bytes(_binary(header=header)[:68])
    results = run_limited({name: f"WordVectors.from_file({str(path)!r}, binary=True)" for name, path in paths.items()},
                          headroom=256 << 20)
    for name in paths:
        assert results[name][0] == "ValueError" and "which need at least" in results[name][1], results[name]


# -- text files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["", "4 2\n"])
def test_a_utf8_bom_is_skipped_and_lines_are_counted_right(tmp_path, header):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}a 1 2\nb 3 4\nc 5 6\nd 7 8\n".encode())
    vectors = WordVectors.from_file(path)
    assert vectors.words == ["a", "b", "c", "d"]  # not '\ufeffa'
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}a 1 2\nb 3\n".encode())
    with pytest.raises(ValueError, match=f"bom.txt:{2 + bool(header)}: expected a word and 2 numbers"):
        WordVectors.from_file(path)


def test_non_utf8_text_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a 1 2\ncafé 3 4\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:2: not valid UTF-8 \(invalid continuation byte at byte 4"):
        WordVectors.from_file(path)


@pytest.mark.parametrize("seed", range(5))
def test_a_binary_file_read_as_text_suggests_binary_true(tmp_path, seed):
    matrix = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
    path = tmp_path / "vectors.w2v"  # not .bin, so read as text unless binary=True
    path.write_bytes(_binary(matrix=matrix))
    with pytest.raises(ValueError, match="binary=True"):
        as_word_vectors(str(path))
    assert WordVectors.from_file(path, binary=True).words == WORDS


def test_tab_separated_files_are_read(tmp_path):
    path = tmp_path / "tabs.tsv"
    path.write_text("a\t1\t2\nb\t3\t4\n")
    vectors = WordVectors.from_file(path)
    assert vectors.words == ["a", "b"]
    np.testing.assert_array_equal(vectors.matrix, [[1, 2], [3, 4]])


def test_a_single_field_line_is_explained(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("word,1,2\n")
    with pytest.raises(ValueError, match=r"one\.txt:1: expected a word followed by its numbers"):
        WordVectors.from_file(path)


def test_text_truncation_at_every_offset_is_a_value_error(tmp_path):
    """With a header, a missing line is caught by the count; a cut inside a line leaves a row short.
    Only the cut of the final newline gives a valid file, the same one. (Without a header nothing can
    tell a cut after a complete line from the end of the file.)"""
    text = "4 2\n" + "".join(f"{w} {a:g} {b:g}\n" for w, (a, b) in zip(WORDS, MATRIX.tolist()))
    data = text.encode()
    path = tmp_path / "t.txt"
    for size in range(len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError):
            WordVectors.from_file(path)
    path.write_bytes(data[:-1])
    np.testing.assert_array_equal(WordVectors.from_file(path).matrix, MATRIX)


# -- matrices that would lose data when cast ---------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda m: WordVectors(["a", "b"], m),
    lambda m: WordVectors.from_mapping({"a": m[0], "b": m[1]}),
    lambda m: build_universe(m, np.ones((3, 2), np.float32)),
])
def test_complex_matrices_are_refused(make):
    with pytest.raises(TypeError, match="is complex"):
        make(np.array([[1 + 2j, 0], [0, 1]]))


def test_values_beyond_float32_are_refused_not_made_inf():
    with pytest.raises(ValueError, match="beyond the float32 range"):
        WordVectors(["a"], np.array([[1e39, 0.0]]))
    assert np.isfinite(WordVectors(["a"], np.array([[3e38, -3e38]])).matrix).all()


@pytest.mark.parametrize("extra", [0, 5])  # whole blocks only, and a partial last one
def test_a_large_text_file_is_parsed_in_blocks_with_the_right_line_numbers(tmp_path, extra):
    from sfbow import vectors as vectors_module

    n = 3 * vectors_module._BLOCK_ROWS + extra
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((n, 3)).astype(np.float32)
    lines = [f"w{i} " + " ".join(repr(float(x)) for x in row) for i, row in enumerate(matrix)]
    path = tmp_path / "big.txt"
    path.write_text(f"{n} 3\n" + "\n".join(lines) + "\n")
    np.testing.assert_array_equal(WordVectors.from_file(path).matrix, matrix)
    lines[2 * vectors_module._BLOCK_ROWS + 1] = "bad 1 2 oops"
    path.write_text(f"{n} 3\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"big.txt:{2 * vectors_module._BLOCK_ROWS + 3}: a vector value is not a number"):
        WordVectors.from_file(path)
