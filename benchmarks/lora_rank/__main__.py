"""``python -m benchmarks.lora_rank``: the study's command line (:func:`.cli.main`)."""

from .cli import main

raise SystemExit(main())
