import json
import zipfile

import numpy as np
import pytest

from sfbow import SFBoW, WordVectors
from sfbow._persistence import ModelFileError

SENTENCES = ["the cat sat on a mat", "a dog ran", "", "unknown"]


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


def test_the_file_holds_no_pickle(tmp_path, small_model):
    path = tmp_path / "model.npz"
    small_model.save(path)
    with np.load(path, allow_pickle=False) as archive:  # would raise on an object array
        assert set(archive.files) == {"metadata", "words", "word_ends", "vectors", "universe"}


def test_a_failed_write_leaves_the_old_file(tmp_path, small_model, monkeypatch):
    path = tmp_path / "model.npz"
    small_model.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        small_model.save(path)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_truncated_file_is_rejected(tmp_path, small_model):
    path = tmp_path / "model.npz"
    small_model.save(path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        SFBoW.load(path)


def _rewrite(path, **replace):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_tampered_arrays_fail_their_checksum(tmp_path, small_model):
    path = tmp_path / "model.npz"
    small_model.save(path)
    _rewrite(path, **{"universe.npy": _npy(small_model.universe * 2)})
    with pytest.raises(ModelFileError, match="'universe' does not match its checksum"):
        SFBoW.load(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"version": 99}, "format version 99"),
    ({"format": "other"}, "not an sfbow model"),
    ({"clip": "yes"}, "'clip' is missing or not a bool"),
])
def test_bad_metadata_is_rejected(tmp_path, small_model, change, message):
    path = tmp_path / "model.npz"
    small_model.save(path)
    with np.load(path) as archive:
        metadata = json.loads(bytes(archive["metadata"]))
    metadata.update(change)
    _rewrite(path, **{"metadata.npy": _npy(np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8))})
    with pytest.raises(ModelFileError, match=message):
        SFBoW.load(path)


def test_other_files_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError):
        SFBoW.load(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.ones(3))
    with pytest.raises(ModelFileError, match="no metadata"):
        SFBoW.load(other)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ModelFileError):
        SFBoW.load(text)


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
