import subprocess
import sys

import numpy as np
import pytest

import sfbow
from sfbow.cli import main

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "sentences.txt"


def test_encode_a_file_keeps_one_row_per_line(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("A man plays guitar.\n\nzzzz qqqqx\nThe market fell.\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    assert main(["encode", str(source), "-o", str(out)]) == 0
    vectors = np.load(out)
    assert vectors.shape == (4, 100) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, sfbow.encode(source.read_text().splitlines()))


def test_encode_reads_stdin_through_the_console_script(tmp_path):
    out = tmp_path / "out.npy"
    result = subprocess.run([sys.executable, "-m", "sfbow.cli", "encode", "-", "-o", str(out)],
                            input="one line\nanother line\n", capture_output=True, text=True, check=True)
    assert "wrote 2 x 100" in result.stderr
    assert np.load(out).shape == (2, 100)


def test_similarity_prints_a_number(capsys):
    assert main(["similarity", "A man is playing a guitar.", "Someone plays the guitar."]) == 0
    related = float(capsys.readouterr().out)
    main(["similarity", "A man is playing a guitar.", "Stocks fell sharply.", "--metric", "fuzzy_jaccard"])
    assert related > float(capsys.readouterr().out)


def test_fit_then_use_the_saved_model(tmp_path, capsys):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("cat 1 0 0\ndog 0.9 0.1 0\ncar 0 0 1\n")
    model = tmp_path / "model.npz"
    assert main(["fit", "--vectors", str(vectors), "--universe", "gaussian", "-k", "6", "-o", str(model)]) == 0
    assert main(["similarity", "cat", "dog", "--model", str(model), "--metric", "cosine"]) == 0
    assert float(capsys.readouterr().out) > 0.5
    assert sfbow.SFBoW.load(model).dim == 6


def test_errors_are_reported_without_a_traceback(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o.npy")]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["fit", "--universe", "identity", "-k", "7", "-o", str(tmp_path / "m.npz")]) == 2
    assert "K = d = 50" in capsys.readouterr().err


def test_help_explains_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "encode" in text and "similarity" in text and "fit" in text and "examples:" in text


def test_the_shipped_example_file_encodes():
    assert main(["encode", str(EXAMPLES), "-o", "/dev/null", "--no-progress"]) == 0


def test_only_newlines_end_lines_so_rows_match_line_numbers(tmp_path):
    source = tmp_path / "odd.txt"
    source.write_bytes("a\x0cb\nc\u2028d\r\ne\x1cf\n".encode())
    out = tmp_path / "out.npy"
    assert main(["encode", str(source), "-o", str(out)]) == 0
    assert np.load(out).shape == (3, 100)


def test_an_output_folder_that_does_not_exist_is_named(tmp_path, capsys):
    assert main(["encode", str(EXAMPLES), "-o", str(tmp_path / "nope" / "v.npy")]) == 2
    assert "the folder" in capsys.readouterr().err


def test_help_does_not_import_the_sts_study():
    """`sfbow --help` lists `sts` without importing the study code (or scipy.stats): measured 3.3 s -> 1.5 s."""
    code = ("import sys, contextlib, io\nfrom sfbow.cli import main\nwith contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "assert 'sts' in out.getvalue()\n"
            "print(sorted(m for m in ('sfbow.sts_benchmark', 'scipy.stats') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
