"""The model file: round trips, and every way a file can be damaged, edited or crafted."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbow import ModelFileError, SFBoW, WordVectors
from sfbow import _persistence as persistence
from sfbow.cli import main

from .limited import run_limited

SENTENCES = ["the cat sat on a mat", "a dog ran", "", "unknown"]
OPTIONS = {"strategy": "gaussian", "normalize": True, "clip": True, "custom_tokenizer": False}


@pytest.fixture
def saved(tmp_path, small_model):
    path = tmp_path / "model.npz"
    small_model.save(path)
    return path


def test_round_trip_gives_identical_vectors(tmp_path, small_vectors):
    model = SFBoW(WordVectors(small_vectors.words + ["naïve", "日本"], np.vstack([small_vectors.matrix, np.ones((2, 8))])),
                  "pca", k=5, clip=False, normalize=False)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = SFBoW.load(path)
    assert loaded.vectors.words == model.vectors.words
    assert (loaded.strategy, loaded.clip, loaded.normalize, loaded.dim) == ("pca", False, False, 5)
    sentences = SENTENCES + ["naïve 日本"]
    np.testing.assert_array_equal(loaded.encode(sentences), model.encode(sentences))
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_the_file_holds_the_documented_members_stored_and_no_pickle(saved):
    with zipfile.ZipFile(saved) as archive:
        assert {info.filename for info in archive.infolist()} == {
            "metadata.json", "checksum.sha256", "words.npy", "word_ends.npy", "vectors.npy", "universe.npy",
            "weights.npy"}
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        metadata = json.loads(archive.read("metadata.json"))
    assert set(metadata) == {"format", "version", "members", *persistence.FIELDS, "weighting"}
    assert metadata["weighting"] == "zipf"
    assert set(metadata["members"]) == {*(name for name, member in persistence.MEMBERS.items() if member.required),
                                        "weights"}
    with np.load(saved, allow_pickle=False) as archive:  # still a plain npz: would raise on an object array
        assert archive["vectors"].dtype == np.float32


def test_a_failed_write_leaves_the_old_file(saved, small_model, monkeypatch):
    before = saved.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", disk_full)
    with pytest.raises(OSError, match="disk full"):
        small_model.save(saved)
    assert saved.read_bytes() == before and len(list(saved.parent.iterdir())) == 1


def test_save_to_an_empty_path_names_the_problem(tmp_path, small_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IsADirectoryError, match="names a folder, not a file"):
        small_model.save("")
    assert list(tmp_path.iterdir()) == []


def test_custom_tokenizer_is_not_saved_and_load_says_so(tmp_path, small_vectors):
    model = SFBoW(small_vectors, "identity", tokenizer=str.split)
    model.save(tmp_path / "m.npz")
    with pytest.warns(UserWarning, match="custom tokenizer"):
        SFBoW.load(tmp_path / "m.npz")
    loaded = SFBoW.load(tmp_path / "m.npz", tokenizer=str.split)
    np.testing.assert_array_equal(loaded.encode(["cat sat"]), model.encode(["cat sat"]))


def test_words_with_lone_surrogates_round_trip(tmp_path):
    words = ["ok", "bad\udc80word"]
    model = SFBoW(WordVectors(words, np.eye(2)), "identity")
    model.save(tmp_path / "m.npz")
    assert SFBoW.load(tmp_path / "m.npz").vectors.words == words


def test_load_and_init_build_the_same_object(saved, small_model):
    loaded = SFBoW.load(saved)
    assert set(vars(loaded)) == set(vars(small_model))
    for name in ("normalize", "clip", "memberships", "strategy"):
        assert getattr(loaded, name) == getattr(small_model, name)
    np.testing.assert_array_equal(loaded.table, small_model.table)


# -- helpers that rewrite a file -------------------------------------------------------------------

def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _rewrite_metadata(path, edit, *, recompute_checksum=True):
    members = _members(path)
    metadata = json.loads(members["metadata.json"])
    raw = edit(metadata)
    raw = raw if isinstance(raw, bytes) else json.dumps(metadata).encode()
    members["metadata.json"] = raw
    if recompute_checksum:
        members["checksum.sha256"] = hashlib.sha256(raw).hexdigest().encode()
    _write(path, members)


def _craft(path, words, vectors, universe, **options):
    """A file with every checksum right but hostile contents (what an attacker who read the docs writes)."""
    buffer, ends = persistence.encode_words(words) if not isinstance(words, tuple) else words
    persistence.save_model_file(path, {**OPTIONS, **options},
                                {"words": buffer, "word_ends": ends, "vectors": vectors, "universe": universe})


# -- edited and crafted files ------------------------------------------------------------------------

@pytest.mark.parametrize("change", [{"clip": False}, {"normalize": False}, {"strategy": "pca"}])
def test_an_edited_option_fails_the_metadata_checksum(saved, change):
    _rewrite_metadata(saved, lambda m: m.update(change), recompute_checksum=False)
    with pytest.raises(ModelFileError, match="metadata does not match its checksum"):
        SFBoW.load(saved)


def test_tampered_arrays_fail_their_checksum(saved, small_model):
    members = _members(saved)
    members["universe.npy"] = _npy(small_model.universe * 2)
    _write(saved, members)
    with pytest.raises(ModelFileError, match="'universe' does not match its checksum"):
        SFBoW.load(saved)


EYE = np.eye(2, dtype=np.float32)


@pytest.mark.parametrize(("words", "vectors", "universe", "message"), [
    (["a", "b"], EYE, np.full((2, 2), np.nan, np.float32), "universe has NaN or inf"),
    (["a", "b"], np.array([[np.inf, 0], [0, 1]], np.float32), EYE, "matrix has NaN or inf"),
    (["a", "b"], EYE, np.zeros((0, 2), np.float32), "K >= 1"),
    (["a", "b"], EYE, np.ones((3, 5), np.float32), "d = 2"),
    ((np.frombuffer(b"a\xff", np.uint8), np.array([1, 2])), EYE, EYE, "word 1 is not valid UTF-8"),
    ((np.frombuffer(b"ab", np.uint8), np.array([2, 1])), EYE, EYE, "word offsets do not fit"),
    (["a", "a"], EYE, EYE, "duplicate: 'a'"),
    ([], np.zeros((0, 2), np.float32), EYE, "words is empty"),
    (["a", "b"], np.ones((3, 2), np.float32), EYE, "2 words but 3 matrix rows"),
    (["a", "b"], np.full((2, 2), 3e38, np.float32), EYE * 3e38, "beyond the float32 range"),
])
def test_crafted_contents_with_valid_checksums_are_model_file_errors(tmp_path, words, vectors, universe, message):
    path = tmp_path / "crafted.npz"
    _craft(path, words, vectors, universe, normalize=False)
    with pytest.raises(ModelFileError, match=message) as caught:
        SFBoW.load(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.update(version=99), "format version 99"),
    (lambda m: m.update(format="other"), "not an sfbow model"),
    (lambda m: m.update(clip="yes"), "'clip' is missing or not a bool"),
    (lambda m: m.pop("strategy"), "'strategy' is missing"),
    (lambda m: m.update(extra=1), "unknown metadata fields \\['extra'\\]"),
    (lambda m: m["members"].update(tokens=m["members"]["words"]), "unknown members \\['tokens'\\]"),
    (lambda m: m["members"].pop("vectors"), "lacks the members \\['vectors'\\]"),
    (lambda m: m["members"]["vectors"].update(shape=[10**12]), "member 'vectors' is not a 2-D"),
    (lambda m: m["members"]["vectors"].update(dtype="<f8"), "member 'vectors' is not a 2-D <f4"),
    (lambda m: m["members"]["universe"].update(shape=[10**6, 10**6]), "declares shape \\(1000000, 1000000\\)"),
    (lambda m: m["members"]["universe"].update(shape=[8, 16]), "metadata says float32 \\(8, 16\\)"),
    (lambda m: b"[" * 200_000, "nested too deeply"),
    (lambda m: b'{"format": NaN}', "NaN, which is not valid JSON"),
    (lambda m: b" " * (2 << 20), "over its limit"),
    (lambda m: b"\xff{}", "UnicodeDecodeError"),
    (lambda m: b"[]", "not an sfbow model"),
])
def test_bad_metadata_with_a_valid_checksum_is_rejected(saved, edit, message):
    _rewrite_metadata(saved, edit)
    with pytest.raises(ModelFileError, match=message):
        SFBoW.load(saved)


def test_a_compressed_member_is_refused_without_decompressing_it(saved):
    members = _members(saved)
    _write(saved, members, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match="is compressed \\(zip method 8\\)"):
        SFBoW.load(saved)


def test_other_files_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError):
        SFBoW.load(tmp_path / "missing.npz")
    cases = {"other.npz": lambda p: np.savez(p, x=np.ones(3)), "plain.npy": lambda p: np.save(p, np.ones(3)),
             "text.npz": lambda p: p.write_text("hello"), "empty.npz": lambda p: p.write_bytes(b"")}
    for name, write in cases.items():
        write(tmp_path / name)
        with pytest.raises(ModelFileError, match=name):
            SFBoW.load(tmp_path / name)


# -- byte-level damage --------------------------------------------------------------------------------

def _same_model(a, b):
    return (a.vectors.words == b.vectors.words and np.array_equal(a.vectors.matrix, b.vectors.matrix)
            and np.array_equal(a.universe, b.universe) and (a.strategy, a.normalize, a.clip) == (b.strategy, b.normalize, b.clip))


def test_truncation_at_every_offset_is_a_model_file_error(saved, tmp_path):
    data = saved.read_bytes()
    damaged = tmp_path / "damaged.npz"
    for size in range(len(data)):  # every offset: the file is a few KB
        damaged.write_bytes(data[:size])
        with pytest.raises(ModelFileError):
            SFBoW.load(damaged)


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_any_single_byte_flip_is_refused_or_harmless(saved, small_model, tmp_path, mask):
    """Every offset (zip directory, local headers, .npy headers, data, metadata): a flip is either a
    ModelFileError or lands in a field nothing reads (a timestamp) and loads the very same model."""
    data = bytearray(saved.read_bytes())
    damaged = tmp_path / "damaged.npz"
    for offset in range(len(data)):
        data[offset] ^= mask
        damaged.write_bytes(data)
        data[offset] ^= mask
        try:
            loaded = SFBoW.load(damaged)
        except ModelFileError:
            continue
        assert _same_model(loaded, small_model), f"a flip at offset {offset} changed the model silently"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8),
       st.integers(0, 10**6))
def test_random_damage_is_refused_or_harmless(saved, small_model, tmp_path, flips, cut):
    data = bytearray(saved.read_bytes())
    for offset, mask in flips:
        data[offset % len(data)] ^= mask
    damaged = tmp_path / "random.npz"
    damaged.write_bytes(bytes(data[:len(data) - cut % 64]))
    try:
        loaded = SFBoW.load(damaged)
    except ModelFileError:
        return
    assert _same_model(loaded, small_model)


# -- the CLI shows one line, not a traceback ----------------------------------------------------------

def test_the_cli_reports_a_damaged_model_in_one_line(saved, tmp_path, capsys):
    data = bytearray(saved.read_bytes())
    data[-30] ^= 0xFF  # inside the zip's central directory
    saved.write_bytes(data)
    sentences = tmp_path / "in.txt"
    sentences.write_text("a cat\n")
    assert main(["encode", str(sentences), "-o", str(tmp_path / "out.npy"), "--model", str(saved)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sfbow encode: error: ") and str(saved) in err and err.count("\n") == 1
    assert "Traceback" not in err


# -- hostile sizes under a memory cap -----------------------------------------------------------------

def _bomb(path):
    """A 'model' whose metadata deflates to 200 MB of JSON whitespace (a file of a few hundred KB)."""
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("metadata.json")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as stream:
            stream.write(b'{"format": "sfbow-model"')
            for _ in range(200):
                stream.write(b" " * (1 << 20))
            stream.write(b"}")
        archive.writestr("checksum.sha256", b"0" * 64)


def test_hostile_sizes_fail_cleanly_under_a_memory_cap(tmp_path, saved):
    bomb = tmp_path / "bomb.npz"
    _bomb(bomb)
    assert bomb.stat().st_size < 1_000_000
    huge_shape = tmp_path / "huge_shape.npz"
    huge_shape.write_bytes(saved.read_bytes())
    _rewrite_metadata(huge_shape, lambda m: m["members"]["vectors"].update(shape=[10**6, 10**6]))
    wide = tmp_path / "wide.npz"  # a 4 MB file whose membership table would be 10**4 x 10**6 floats
    _craft(wide, [str(i) for i in range(10**4)], np.ones((10**4, 1), np.float32), np.ones((10**6, 1), np.float32))
    results = run_limited({
        "bomb": f"SFBoW.load({str(bomb)!r})",
        "huge_shape": f"SFBoW.load({str(huge_shape)!r})",
        "wide": f"SFBoW.load({str(wide)!r})",
        "gaussian_k": "SFBoW(WordVectors(['a', 'b'], np.eye(2)), universe='gaussian', k=10**12)",
        "table_k": "SFBoW(WordVectors([str(i) for i in range(10**5)], np.ones((10**5, 2))), 'gaussian', k=10**7)",
    })
    assert results["bomb"][0] == "ModelFileError" and "is compressed" in results["bomb"][1]
    assert results["huge_shape"][0] == "ModelFileError" and "declares shape" in results["huge_shape"][1]
    assert results["wide"][0] == "ModelFileError" and "membership table of 10000 words" in results["wide"][1]
    for case in ("gaussian_k", "table_k"):
        assert results[case][0] == "ValueError" and "lower k" in results[case][1], results[case]
    assert "K=1000000000000" in results["gaussian_k"][1]


def test_the_cli_reports_a_damaged_universe_file_in_one_line(tmp_path, capsys):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("cat 1 0\ndog 0 1\n")
    universe = tmp_path / "u.npy"
    np.save(universe, np.eye(2, dtype=np.float32))
    universe.write_bytes(universe.read_bytes().replace(b"(2, 2)", b"(10000000000, 2)"))
    assert main(["fit", "--vectors", str(vectors), "--universe-file", str(universe), "-o", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sfbow fit: error: ") and "u.npy: its header declares" in err and err.count("\n") == 1


def test_the_format_extends_with_optional_members_and_fields(tmp_path, monkeypatch, small_model):
    """How a subword model adds its data: an optional member and an optional field. A reader that
    does not know them refuses the file instead of silently dropping the tokenizer."""
    words, ends = persistence.encode_words(small_model.vectors.words)
    arrays = {"words": words, "word_ends": ends, "vectors": small_model.vectors.matrix,
              "universe": small_model.universe, "pieces": np.arange(5, dtype=np.int64)}
    options = {**OPTIONS, "tokenizer": {"kind": "wordpiece", "prefix": "##"}}
    with monkeypatch.context() as patch:
        patch.setitem(persistence.MEMBERS, "pieces", persistence.Member("<i8", 1, False, "test"))
        patch.setitem(persistence.OPTIONAL_FIELDS, "tokenizer", dict)
        persistence.save_model_file(tmp_path / "sub.npz", options, arrays)
        contents = persistence.read_model_file(tmp_path / "sub.npz")
        assert contents.options["tokenizer"] == {"kind": "wordpiece", "prefix": "##"}
        np.testing.assert_array_equal(contents.arrays["pieces"], np.arange(5))
        plain = tmp_path / "plain.npz"
        small_model.save(plain)  # older files, without the optional parts, still read
        assert "pieces" not in persistence.read_model_file(plain).arrays
    with pytest.raises(ModelFileError, match="unknown metadata fields \\['tokenizer'\\]"):
        persistence.read_model_file(tmp_path / "sub.npz")
