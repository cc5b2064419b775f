"""STS benchmark of SFBoW and the baselines; see sfbow/sts_benchmark.py and docs/sts.md.

    python benchmarks/sts.py [--data DIR] [--out DIR] [--methods sfbow,sif,...]
"""

import sys

from sfbow.sts_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
