"""Run hostile cases in a child process whose address space is capped, so that a regression that
allocates what a file claims fails a test (with a MemoryError) instead of taking the machine down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import json, resource, sys, traceback
import numpy as np
import sfbow
from sfbow import SFBoW, WordVectors
with open('/proc/self/status') as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith('VmSize'))
cap = used + {headroom}
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
results = {{}}
for name, code in json.loads(sys.argv[1]).items():
    try:
        exec(code, {{'np': np, 'sfbow': sfbow, 'SFBoW': SFBoW, 'WordVectors': WordVectors}})
        results[name] = ['ok', '']
    except BaseException as exc:  # MemoryError included: that is what the test must catch
        results[name] = [type(exc).__name__, str(exc)]
print(json.dumps(results))
"""


def run_limited(cases: dict[str, str], headroom: int = 1 << 30) -> dict[str, tuple[str, str]]:
    """Run each snippet of ``cases`` under an address-space cap of the child's size plus ``headroom``;
    return ``{name: (exception type name or 'ok', message)}``."""
    script = _PRELUDE.format(headroom=headroom)
    cases = {name: textwrap.dedent(code) for name, code in cases.items()}
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"the memory-limited child died (status {done.returncode}): {done.stderr[-2000:]}")
    return {name: (kind, message) for name, (kind, message) in json.loads(done.stdout.splitlines()[-1]).items()}
