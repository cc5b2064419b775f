"""Encoding from several Python threads at once, under every Numba threading layer this machine has.

The layer is fixed per process at the first parallel call, so each layer runs in its own subprocess
(``NUMBA_THREADING_LAYER``). Under ``workqueue``, which aborts the process when two threads enter it
("Concurrent access"), the kernels must take turns; under OpenMP and TBB they may overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Exit status of the script when the layer cannot be loaded here (e.g. TBB is not installed).
UNAVAILABLE = 77

SCRIPT = textwrap.dedent("""
    import sys, threading
    import numba, numpy as np
    import sfbow
    from sfbow import SFBoW, _kernels
    from sfbow.evaluation import load_stsb

    try:
        _kernels.concurrent_calls_are_safe()  # chooses the layer
    except ValueError as exc:  # "No threading layer could be loaded"
        print(exc)
        sys.exit({unavailable})
    data = load_stsb(sys.argv[1])
    sentences = data.sentences1 + data.sentences2 + ["Café", "naïve Σίσυφος", "“quoted” — dash"]
    models = [sfbow.default_model(), SFBoW(sfbow.default_vectors(), memberships="float16")]
    expected = [model.encode(sentences, n_threads=1) for model in models]
    failures = []

    def work(t):
        try:
            for round in range(3):
                model = models[(t + round) % 2]
                got = model.encode(sentences, n_threads=2)
                if not np.array_equal(got, expected[(t + round) % 2]):
                    failures.append(f"thread {{t}} round {{round}}: different vectors")
        except Exception as exc:
            failures.append(f"thread {{t}}: {{exc!r}}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(numba.threading_layer(), failures)
    sys.exit(1 if failures else 0)
""").format(unavailable=UNAVAILABLE)


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
def test_four_threads_encode_at_once_under_each_threading_layer(layer: str, stsb_dir: Path) -> None:
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(stsb_dir / "sts-dev.csv")], env=env,
                            capture_output=True, text=True, timeout=300)
    if result.returncode == UNAVAILABLE:
        pytest.skip(f"Numba's {layer} threading layer is not available here: {result.stdout.strip()[:200]}")
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.split()[0] == layer
