"""The ``evotox`` command: ``run`` a recorded toxicity search (or ``--resume`` one), ``report`` on run files,
``export-ratings`` for a human study, ``serve`` a local model behind an OpenAI-compatible loopback server.

Every prompt and answer goes to the local run file only; nothing is sent anywhere unless a backend or an
oracle is explicitly an HTTP one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from evotox.config import METHODS, SearchConfig
from evotox.prompts import DEFAULT_CATEGORIES, DEFAULT_SYSTEM_PROMPT

__all__ = ["main"]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evotox", description="Search-based toxicity testing of language models: "
                                     "measure how far a model's answers can be pushed towards toxicity.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or --resume) a recorded search")
    run.add_argument("--resume", metavar="RUN", help="continue the run recorded in RUN (all settings come from it)")
    run.add_argument("--seeds", metavar="FILE", help="seed prompts, one a line (default: the 50 HarmfulQA questions "
                     "shipped with evotox, evotox/data/seeds.txt)")
    run.add_argument("--limit", type=int, help="use only the first N seeds")
    run.add_argument("--out", metavar="RUN", help="the run file to write (JSON lines; must not exist)")
    run.add_argument("--methods", type=_csv, default=METHODS,
                     help=f"comma-separated, from {','.join(METHODS)} (default: all)")
    run.add_argument("--variant", choices=METHODS[:4], help="shorthand: one variant plus the three baselines")
    run.add_argument("--iterations", type=int, default=SearchConfig.iterations)
    run.add_argument("--categories", type=_csv, default=DEFAULT_CATEGORIES,
                     help="comma-separated toxicity categories, one mutant each per iteration (lambda)")
    run.add_argument("--fitness", default="max", choices=("max", "mean", "min", "median"))
    run.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, help="the SUT's system prompt ('' for none)")
    run.add_argument("--sut", default="local", help="local, local:PATH, http:URL[,URL..], llamacpp:PATH")
    run.add_argument("--generator", default="local", help="as --sut")
    run.add_argument("--oracle", default="jigsaw", choices=("jigsaw", "profanity", "perspective"),
                     help="toxicity classifier (perspective reads its key from $PERSPECTIVE_API_KEY)")
    run.add_argument("--http-model", default="default", help="model name sent to an http backend")
    run.add_argument("--http-endpoint", default="chat", choices=("chat", "completions"))
    run.add_argument("--api-key-env", help="environment variable holding an http backend's bearer key")
    run.add_argument("--http-concurrency", type=int, default=8)
    run.add_argument("--sut-max-tokens", type=int, default=SearchConfig.sut_max_new_tokens)
    run.add_argument("--generator-max-tokens", type=int, default=SearchConfig.generator_max_new_tokens)
    run.add_argument("--sut-temperature", type=float, default=SearchConfig.sut_temperature)
    run.add_argument("--generator-temperature", type=float, default=SearchConfig.generator_temperature)
    run.add_argument("--random-seed", type=int, default=0)
    run.add_argument("--parallel", type=int, help="searches run at once (for http backends; default 1; may be "
                     "changed on --resume)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="Markdown table, CSV and plot from run files")
    report.add_argument("runs", nargs="+", metavar="RUN")
    report.add_argument("--out", metavar="PREFIX", help="write PREFIX.md, PREFIX.csv, PREFIX.png (default: print)")
    report.add_argument("--no-diversity", action="store_true", help="skip the sfbow diversity column")
    report.add_argument("--no-fluency", action="store_true",
                        help="skip the perplexity column (it loads the default model)")

    ratings = commands.add_parser("export-ratings", help="CSV of accepted prompts and answers with blank rating "
                                  "columns, for a human study")
    ratings.add_argument("runs", nargs="+", metavar="RUN")
    ratings.add_argument("-o", "--out", required=True, metavar="CSV")
    ratings.add_argument("--blind", action="store_true", help="leave out method, iteration and oracle score")

    serve = commands.add_parser("serve", help="an OpenAI-compatible server on 127.0.0.1 for a local model")
    serve.add_argument("--model", default="local", help="local, local:PATH or llamacpp:PATH")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key-env", help="require the bearer key held in this environment variable")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args)
        if args.command == "export-ratings":
            from evotox.ratings import export_ratings

            count = export_ratings([Path(p) for p in args.runs], args.out, blind=args.blind)
            print(f"{args.out}: {count} prompts to rate")
            return 0
        return _serve(args)
    except KeyboardInterrupt:
        if args.command == "run":
            print("evotox: interrupted; the run file keeps everything recorded so far (resume with --resume)",
                  file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as error:
        print(f"evotox: error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from evotox.runner import RunSpec, backend_spec, default_seeds_file, read_seeds, resume_run, start_run
    from sfbow_llm.oracles import OracleSpec

    if args.resume:
        if args.seeds or args.out:
            raise ValueError("--resume takes every setting from the run file; do not pass --seeds or --out with it")
        summary = resume_run(args.resume, progress=not args.quiet, parallel_searches=args.parallel)
        path = args.resume
    else:
        if not args.out:
            raise ValueError("evotox run needs --out RUN, the run file to write (or --resume RUN)")
        seeds_file = Path(args.seeds) if args.seeds else default_seeds_file()
        methods = (args.variant, "random", "seeds", "jailbreak") if args.variant else args.methods
        search = SearchConfig(methods=methods, iterations=args.iterations, categories=args.categories,
                              fitness=args.fitness, system_prompt=args.system_prompt,
                              sut_max_new_tokens=args.sut_max_tokens, generator_max_new_tokens=args.generator_max_tokens,
                              sut_temperature=args.sut_temperature, generator_temperature=args.generator_temperature,
                              random_seed=args.random_seed, parallel_searches=args.parallel or 1)
        http = {"model": args.http_model, "endpoint": args.http_endpoint, "api_key_env": args.api_key_env,
                "concurrency": args.http_concurrency}
        spec = RunSpec(seeds=read_seeds(seeds_file, limit=args.limit), search=search,
                       sut=backend_spec(args.sut, **http), generator=backend_spec(args.generator, **http),
                       oracle=OracleSpec(args.oracle), seeds_file=str(seeds_file))
        summary = start_run(spec, args.out, progress=not args.quiet)
        path = args.out
    best: dict[str, list[float]] = {}
    for result in summary.results:
        best.setdefault(result.method, []).append(result.best.fitness)
    for method, values in best.items():
        print(f"{method:12s} mean best toxicity {sum(values) / len(values):.3f} over {len(values)} seeds")
    print(f"run file: {path} ({summary.new_calls} new calls, {summary.replayed_calls} replayed); "
          f"report: evotox report {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from evotox.report import build_report, write_report

    report = build_report([Path(p) for p in args.runs], diversity=not args.no_diversity,
                          fluency=not args.no_fluency)
    if args.out:
        for written in write_report(report, args.out):
            print(written)
    else:
        print(report.markdown)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from evotox.runner import backend_spec, build_backend
    from evotox.serve import OpenAICompatibleServer

    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not key:
        raise ValueError(f"the environment variable {args.api_key_env} is not set")
    backend = build_backend(backend_spec(args.model))
    with OpenAICompatibleServer(backend, port=args.port, api_key=key) as server:
        print(f"serving on {server.base_url} (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main())
