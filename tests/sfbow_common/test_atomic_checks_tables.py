"""The distribution's shared helpers: atomic writes, argument checks, Markdown tables."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from sfbow_common.atomic import atomic_write, atomic_write_text, atomic_write_via
from sfbow_common.checks import check_choice, check_int, check_nonnegative, check_positive_int, check_real
from sfbow_common.tables import markdown_table


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_write(target, "w", encoding="utf-8") as stream:
        stream.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left behind


def test_atomic_write_gives_umask_permissions_and_refuses_missing_folders(tmp_path):
    path = atomic_write_via(tmp_path / "x.bin", lambda tmp: tmp.write_bytes(b"\x00\x01"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "x.txt", "x")


@pytest.mark.parametrize("bad", [True, np.bool_(False), 1.0, "3", None])
def test_check_int_rejects_non_integers_naming_the_argument(bad):
    with pytest.raises(TypeError, match="budget must be an int"):
        check_int(bad, "budget")


def test_check_ranges():
    assert check_int(np.int64(3), "k", minimum=0) == 3 and type(check_int(np.int64(3), "k")) is int
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        check_positive_int(0, "k")
    with pytest.raises(ValueError, match="<= 5"):
        check_int(6, "k", maximum=5)
    with pytest.raises(ValueError, match="finite"):
        check_real(float("nan"), "lr")
    with pytest.raises(ValueError, match="lr must be finite and > 0"):
        check_real(0.0, "lr", minimum=0.0, exclusive_minimum=True)
    assert check_nonnegative(0, "lam") == 0.0
    with pytest.raises(ValueError, match="'max', 'mean'"):
        check_choice("sum", "fitness", ("max", "mean"))


def test_markdown_table_aligns_and_checks_shape():
    table = markdown_table(["method", "score"], [["a", 1.5], ["longer", 10]])
    assert table.splitlines() == ["| method | score |", "|--------|------:|",
                                  "| a      |   1.5 |", "| longer |    10 |"]
    with pytest.raises(ValueError, match=r"rows\[0\] has 1 cells"):
        markdown_table(["a", "b"], [["x"]])


def test_file_sha256_is_hashlib_of_the_bytes(tmp_path):
    import hashlib

    from sfbow_common.hashing import file_sha256

    data = bytes(range(256)) * 40_000  # > one 4 MiB block, so the block loop is exercised
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["", ".", "folder"])
def test_atomic_write_to_a_folder_or_empty_path_says_so(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="names a folder, not a file"):
        atomic_write_text(name, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
