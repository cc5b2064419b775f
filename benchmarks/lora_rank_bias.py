"""The LoRA-rank bias study's documented entry point: the code is the package ``benchmarks/lora_rank/`` (its
docstring describes the study, its modules and the commands). Kept so that the documented commands and the
committed results (``benchmarks/results/lora_rank_bias/``, ``lora_rank_bias_quick.*``) stay reproducible::

    OMP_NUM_THREADS=1 python benchmarks/lora_rank_bias.py run --profile study      # the grid, resumable
    python benchmarks/lora_rank_bias.py report --profile study                     # tables + plots
    python benchmarks/lora_rank_bias.py run --profile smoke --results-dir /tmp/x   # the CI pipeline check
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))

from benchmarks.lora_rank.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
