"""The ``sfbow`` command line: encode files, compare two sentences, fit and save a model, run STS.

Run ``sfbow --help`` or ``sfbow COMMAND --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sfbow.model import SFBoW
from sfbow.similarities import cosine, fuzzy_jaccard
from sfbow.universe import DEFAULT_N_WORDS, STRATEGIES, read_universe_file
from sfbow.vectors import WordVectors
from sfbow_common.atomic import atomic_write

_EPILOG = """examples:
  sfbow encode sentences.txt -o vectors.npy      one sentence per line -> (lines x K) float32 .npy
  cat sentences.txt | sfbow encode - -o vectors.npy
  sfbow similarity "A man plays guitar." "Someone is playing a guitar."
  sfbow fit --vectors glove.840B.300d.txt --universe pca -o my-model.npz
  sfbow encode sentences.txt -o vectors.npy --model my-model.npz
  sfbow distill path/to/sentence-transformer -o distilled.npz   (extra: distill)
  sfbow encode sentences.txt -o vectors.npy --model minilm    (distilled all-MiniLM-L6-v2, cached)
  sfbow sts --data ~/sts --out sts-results      the STS table; the data folder is yours to name

Without --model, commands use the default model (GloVe 6B 50d, pca universe, K=100),
which ships with the package and needs no network."""

#: ``--metric`` names: the names of the library's functions.
MEASURES = {"fuzzy_jaccard": fuzzy_jaccard, "cosine": cosine}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sfbow`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sts"]:  # its own parser, imported only now (see _add_sts_command)
        from sfbow import sts_benchmark

        return sts_benchmark.main(argv[1:], prog="sfbow sts")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"sfbow {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfbow",
        description="Static Fuzzy Bag-of-Words sentence embeddings: sentences in, fixed-size vectors out.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    encode = commands.add_parser("encode", help="encode a file of sentences (one per line) into a .npy array")
    encode.add_argument("input", help="text file, one sentence per line (UTF-8); '-' reads standard input")
    encode.add_argument("-o", "--output", required=True, help="where to write the (lines x K) float32 .npy array")
    _add_model_option(encode)
    encode.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    encode.set_defaults(handler=_encode)

    similarity = commands.add_parser("similarity", help="print the similarity of two sentences")
    similarity.add_argument("sentence_a")
    similarity.add_argument("sentence_b")
    similarity.add_argument("--metric", choices=tuple(MEASURES), default="fuzzy_jaccard",
                            help="fuzzy_jaccard (default, in [0, 1]) or cosine (in [-1, 1]), as sfbow.fuzzy_jaccard "
                                 "and sfbow.cosine")
    _add_model_option(similarity)
    similarity.set_defaults(handler=_similarity)

    fit = commands.add_parser("fit", help="build a model from word vectors and a universe, and save it")
    fit.add_argument("--vectors", help="word2vec text/binary or GloVe text file (default: GloVe 6B 50d)")
    fit.add_argument("--binary", action="store_true", help="--vectors is in word2vec binary format")
    fit.add_argument("--limit", type=int, help="read only the first LIMIT words of --vectors")
    fit.add_argument("--universe", choices=sorted(STRATEGIES), default="pca", help="universe strategy (default: pca)")
    fit.add_argument("--universe-file", help="a .npy (K x d) universe matrix to use instead of a strategy")
    fit.add_argument("-k", "--k", type=int, help="universe size K (default depends on the strategy)")
    fit.add_argument("--n-words", type=int, default=DEFAULT_N_WORDS,
                     help=f"most frequent words the kmeans/pca universes are fitted on (default {DEFAULT_N_WORDS})")
    fit.add_argument("--seed", type=int, default=0, help="seed of the gaussian/kmeans universes (default 0)")
    fit.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the word vectors")
    fit.add_argument("--no-clip", action="store_true", help="do not clip memberships at 0")
    fit.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    fit.set_defaults(handler=_fit)

    distill = commands.add_parser("distill", help="distil a local sentence-transformers model into an sfbow model")
    distill.add_argument("model_folder", help="a local sentence-transformers model folder (offline)")
    distill.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    distill.add_argument("--pca-dims", type=int, default=None,
                         help="model2vec PCA dimensions (default: none, keep all)")
    distill.add_argument("--universe", choices=sorted(STRATEGIES), default="pca", help="universe strategy (default: pca)")
    distill.add_argument("-k", "--k", type=int, default=160, help="universe size K (default 160, tuned on STS-B dev)")
    distill.add_argument("--no-normalize", action="store_true",
                         help="keep the distilled vectors' lengths (their weighting) instead of unit vectors")
    distill.set_defaults(handler=_distill)

    _add_sts_command(commands)
    return parser


def _add_sts_command(commands: argparse._SubParsersAction) -> None:
    # Listed here for `sfbow --help` only: main() hands `sfbow sts ...` to the STS study's own parser, so
    # its code (baselines, datasets, tqdm) is imported only when that command runs.
    commands.add_parser("sts", help="run the STS benchmark table (methods x datasets); see sfbow sts --help",
                        add_help=False)


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model file written by 'sfbow fit' or 'sfbow distill', or 'minilm' "
                        "(distilled from all-MiniLM-L6-v2, built and cached on first use); default: the built-in model")


def _load_model(path: str | None) -> SFBoW:
    if path is None:
        from sfbow import default_model

        return default_model()
    from sfbow.distill import PRETRAINED, pretrained

    if path in PRETRAINED and not Path(path).exists():
        return pretrained(path)
    return SFBoW.load(path)


def _encode(args: argparse.Namespace) -> int:
    source: str | Path
    if args.input == "-":
        raw, source = sys.stdin.buffer.read(), "<stdin>"
    else:
        path = Path(args.input)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        raw, source = path.read_bytes(), path
    from sfbow.evaluation import split_lines  # with scipy.stats: imported only by the command that reads lines

    lines = [line for _, line in split_lines(raw, source)]
    model = _load_model(args.model)
    vectors = model.encode(lines, show_progress=False if args.no_progress else None)
    _save_npy(args.output, vectors)
    print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} float32 vectors to {args.output}", file=sys.stderr)
    return 0


def _similarity(args: argparse.Namespace) -> int:
    vectors = _load_model(args.model).encode([args.sentence_a, args.sentence_b])
    print(f"{MEASURES[args.metric](vectors[0], vectors[1]):.4f}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    vectors = None if args.vectors is None else WordVectors.from_file(
        args.vectors, binary=args.binary, limit=args.limit)
    universe = args.universe if args.universe_file is None else read_universe_file(args.universe_file)
    model = SFBoW(vectors, universe, k=args.k, n_words=args.n_words, random_state=args.seed,
                  normalize=not args.no_normalize, clip=not args.no_clip)
    model.save(args.output)
    print(f"saved {model!r} to {args.output}", file=sys.stderr)
    return 0


def _distill(args: argparse.Namespace) -> int:
    from sfbow.distill import distill

    model = distill(args.model_folder, args.output, pca_dims=args.pca_dims, universe=args.universe, k=args.k,
                    normalize=not args.no_normalize)
    print(f"saved {model!r} to {args.output}", file=sys.stderr)
    return 0


def _save_npy(path: str, array: np.ndarray) -> None:
    with atomic_write(path) as stream:
        np.save(stream, array, allow_pickle=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
