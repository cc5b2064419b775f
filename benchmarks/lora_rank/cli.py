"""The command line: ``run`` (the grid, resumable; workers may run side by side), ``report`` (tables and
plots), and the internal ``speed-worker``. See the package docstring for the commands."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from . import __doc__ as package_doc
from .config import DATASETS, PROFILES, RESULTS, ROOT, StudyConfig
from .report import report
from .scheduler import Study
from .speed import speed_worker


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def config_from(args: argparse.Namespace) -> StudyConfig:
    config = PROFILES[args.profile]
    changes = {name: getattr(args, name) for name in ("data", "steps", "ranks", "seeds", "l1ra_budgets")
               if getattr(args, name, None) is not None}
    return dataclasses.replace(config, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(package_doc or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        sub = commands.add_parser(name)
        sub.add_argument("--profile", choices=sorted(PROFILES), default="study")
        sub.add_argument("--data", choices=DATASETS)
        sub.add_argument("--steps", type=int)
        sub.add_argument("--ranks", type=_ints, help="LoRA ranks, e.g. 1,2,4,8,16,32")
        sub.add_argument("--seeds", type=_ints)
        sub.add_argument("--l1ra-budgets", type=_ints, help="total L1RA budgets (default: rank x adapters)")
        sub.add_argument("--results-dir", type=Path, default=RESULTS / "lora_rank_bias")
        sub.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "lora_rank_bias")
        if name == "run":
            sub.add_argument("--only", help="comma-separated run kinds or names to run (default: all)")
        else:
            sub.add_argument("--out-dir", type=Path, default=RESULTS)
    worker = commands.add_parser("speed-worker", help="internal: one method's step time and peak memory")
    worker.add_argument("--method", choices=("lora", "l1ra"), required=True)
    for option in ("--rank", "--steps", "--length", "--batch-size", "--layers"):
        worker.add_argument(option, type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "speed-worker":
        speed_worker(args.method, args.rank, args.steps, args.length, args.batch_size, args.layers)
        return 0
    try:
        config = config_from(args)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.command == "run":
        only = set(args.only.split(",")) if args.only else None
        study = Study(config, args.results_dir, args.cache_dir)
        study.fill_toxicity()
        study.execute(only)
        return 0
    prefix = "lora_rank_bias" if args.profile == "study" else f"lora_rank_bias_{args.profile}"
    if config.data != "winobias-anti" and config.data not in args.profile:
        prefix += f"_{config.data}"
    print(report(config, args.results_dir, args.out_dir, prefix, args.profile))
    return 0

