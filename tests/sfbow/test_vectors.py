import numpy as np
import pytest

from sfbow import WordVectors, default_vectors
from sfbow.vectors import as_word_vectors


def test_default_vectors_are_real_glove_50d():
    vectors = default_vectors()
    assert len(vectors) == 400_000 and vectors.dim == 50
    assert vectors.matrix.dtype == np.float32 and vectors.matrix.flags.c_contiguous
    assert vectors.words[:3] == ["the", ",", "."]
    np.testing.assert_allclose(vectors["the"][:3], [0.418, 0.24968, -0.41242], rtol=1e-5)
    assert default_vectors() is vectors  # cached


def test_from_mapping_pair_and_keyed_vectors_agree():
    from gensim.models import KeyedVectors

    words = ["a", "b", "c"]
    matrix = np.arange(6, dtype=np.float64).reshape(3, 2)
    kv = KeyedVectors(2)
    kv.add_vectors(words, matrix)
    for source in (dict(zip(words, matrix)), (words, matrix), kv, WordVectors(words, matrix)):
        vectors = as_word_vectors(source)
        assert vectors.words == words
        np.testing.assert_array_equal(vectors.matrix, matrix.astype(np.float32))


@pytest.mark.parametrize("kind", ["word2vec-text", "glove-text", "word2vec-binary"])
def test_from_file_reads_gensim_formats(tmp_path, kind):
    from gensim.models import KeyedVectors

    words = ["x", "y", "zed"]
    matrix = np.array([[1.0, 2.0], [3.0, -4.0], [0.5, 0.25]], dtype=np.float32)
    kv = KeyedVectors(2)
    kv.add_vectors(words, matrix)
    path = tmp_path / "vectors.bin"
    kv.save_word2vec_format(str(path), binary=kind == "word2vec-binary", write_header=kind != "glove-text")
    vectors = WordVectors.from_file(path, binary=kind == "word2vec-binary")
    assert vectors.words == words
    np.testing.assert_array_equal(vectors.matrix, matrix)


def test_from_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        WordVectors.from_file(tmp_path / "nope.txt")


@pytest.mark.parametrize(("words", "matrix", "message"), [
    (["a", "b"], np.ones((3, 2)), "2 words but 3 matrix rows"),
    (["a", "a"], np.ones((2, 2)), "duplicate"),
    (["a", ""], np.ones((2, 2)), "non-empty string"),
    ([], np.ones((0, 2)), "empty"),
    (["a"], np.ones(2), "2-D"),
    (["a", "b"], np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or inf values \\(first at row 0\\)"),
    (["a", "b"], np.array([[1.0, 0.0], [np.inf, 1.0]]), "row 1"),
])
def test_bad_vectors_are_rejected_with_a_clear_message(words, matrix, message):
    with pytest.raises(ValueError, match=message):
        WordVectors(words, matrix)


def test_unsupported_source_type():
    with pytest.raises(TypeError, match="vectors must be"):
        as_word_vectors(42)


@pytest.mark.parametrize(("content", "message"), [
    ("a 1.0 2.0\nb 1.0\n", ":2: expected a word and 2 numbers, got 1"),
    ("2 2\na 1.0 2.0\nb 1.0 x\n", ":3: a vector value is not a number"),
    ("3 2\na 1.0 2.0\nb 1.0 3.0\n", "announces 3 words but it has 2"),
    ("\n", "no word vectors"),
])
def test_malformed_text_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        WordVectors.from_file(path)


def test_text_reader_keeps_words_with_spaces_and_honours_limit(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("b 3 4\n. . . 1 2\nc 5 6\n")
    vectors = WordVectors.from_file(path, limit=2)
    assert vectors.words == ["b", ". . ."]
    np.testing.assert_array_equal(vectors.matrix, [[3, 4], [1, 2]])


def test_deepcopy_shares_the_immutable_vectors(small_vectors):
    import copy

    assert copy.deepcopy(small_vectors) is small_vectors
    assert copy.deepcopy({"v": small_vectors})["v"] is small_vectors


@pytest.mark.parametrize("header", ["", "2 3\n"])
def test_a_row_with_an_extra_value_is_an_error_not_a_merged_word(tmp_path, header):
    path = tmp_path / "vectors.txt"
    path.write_text(header + "cat 1 0 0\ndog 0.9 0.1 0 0.5\n")
    with pytest.raises(ValueError, match=r":\d: expected a word and 3 numbers, got 4"):
        WordVectors.from_file(path)
