"""STS benchmark of SFBoW and the baselines, the results of record; see sfbow/sts_benchmark.py and docs/sts.md.

    python benchmarks/sts.py [--data DIR] [--out DIR] [--methods sfbow,sif,...]

The same code as ``sfbow sts``, with the checkout's defaults: the data in ``sts/`` under the data root
(``$SFBOW_STS_DIR`` when set, else see :mod:`sfbow_common.data`), the results written to ``benchmarks/results/``. Then run
``python benchmarks/render_docs.py`` to put the new figures into the docs.
"""

import os
import sys
from pathlib import Path

from sfbow.sts_benchmark import DATA_ENV, main
from sfbow_common.data import data_path

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = data_path("sts")
RESULTS = REPOSITORY / "benchmarks" / "results"

if __name__ == "__main__":
    data = Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else SHARED_DATA
    sys.exit(main(data=data, out=RESULTS))
