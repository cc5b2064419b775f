"""The benchmark files shipped inside biasbench load on a fresh install and are the unchanged originals."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import pytest

from biasbench import crows_pairs_file, load_crows_pairs, load_swap_list, load_winobias_pairs, winobias_dir

tomllib = pytest.importorskip("tomllib", reason="tomllib (Python >= 3.11) reads pyproject.toml")
REPO = Path(__file__).resolve().parents[2]


def test_packaged_benchmarks_load_whole():
    for split in ("dev", "test"):
        assert len(load_winobias_pairs(winobias_dir(), split)) == 792
    assert len(load_crows_pairs(crows_pairs_file())) == 1508
    swaps = load_swap_list(winobias_dir() / "generalized_swaps.txt", winobias_dir() / "extra_gendered_words.txt")
    assert swaps.swap("He told her.") == "She told him."


def test_packaged_files_are_declared_as_package_data_with_their_licences():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["biasbench"]
    data = REPO / "biasbench"
    shipped = [p.relative_to(data).as_posix() for p in (data / "data").rglob("*") if p.is_file()]
    assert shipped and all(any(fnmatch(name, pattern) for pattern in globs) for name in shipped), shipped
    assert "data/winobias/LICENSE" in shipped and "data/README.md" in shipped
    assert "CC BY-SA 4.0" in (data / "data" / "README.md").read_text()


def test_packaged_files_are_the_originals(bias_dir):
    originals = [bias_dir / "crows_pairs_anonymized.csv", *sorted((bias_dir / "winobias").iterdir())]
    for original in originals:
        copy = crows_pairs_file() if original.suffix == ".csv" else winobias_dir() / original.name
        assert copy.read_bytes() == original.read_bytes(), copy


@pytest.mark.parametrize("split", ["dev", "test"])
def test_packaged_winobias_pairs_differ_only_in_the_pronoun(split):
    for pair in load_winobias_pairs(winobias_dir(), split)[:50]:
        assert pair.pro != pair.anti
