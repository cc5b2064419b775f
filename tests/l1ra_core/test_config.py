"""L1RAConfig (in the core, no torch): validation, JSON round trip, and the torch backend's install hint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from l1ra_core import L1RAConfig


def test_json_round_trip():
    config = L1RAConfig(target_modules=["query", "value"], initial_rank=4, alpha=8.0, update_interval=10, budget=30)
    data = json.loads(json.dumps(config.to_dict()))
    assert L1RAConfig.from_dict(data) == config
    assert config.update_fraction is None, "an explicit interval replaces the default fraction"
    assert config.scaling == 2.0
    assert L1RAConfig(target_modules=r".*\.query").target_modules == r".*\.query"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_modules": []}, "target_modules is empty"),
        ({"target_modules": [1]}, "regex string or a sequence"),
        ({"initial_rank": 0}, "initial_rank must be"),
        ({"alpha": 0}, "alpha must be"),
        ({"dropout": 1.0}, "dropout must be"),
        ({"min_rank": 0}, "min_rank must be"),
        ({"threshold": -0.1}, "threshold must be"),
        ({"update_fraction": 0.0}, "update_fraction must be"),
        ({"initial_rank": True}, "initial_rank must be an int"),
        ({"update_interval": 2.5}, "update_interval must be an int"),
        ({"warmup_steps": 0.5}, "warmup_steps must be an int"),
        ({"l1_lambda": float("inf")}, "l1_lambda must be finite"),
        ({"gate_lr": float("inf")}, "gate_lr must be finite"),
        ({"alpha": float("nan")}, "alpha must be finite"),
        ({"budget": True}, "budget must be an int"),
        ({"total_steps": 10.0}, "total_steps must be an int"),
        ({"update_fraction": None}, "neither update_interval nor update_fraction"),
    ],
)
def test_invalid_values_are_explained(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        L1RAConfig(**{"target_modules": ["query"], **kwargs})


def test_unknown_and_missing_fields_are_refused():
    with pytest.raises(ValueError, match="unknown L1RAConfig keys.*'r'"):
        L1RAConfig.from_dict({"target_modules": ["q"], "r": 4})
    with pytest.raises(ValueError, match="needs target_modules"):
        L1RAConfig.from_dict({"initial_rank": 4})
    with pytest.raises(TypeError, match="read from a mapping"):
        L1RAConfig.from_dict([("target_modules", "q")])


def test_missing_torch_gives_an_install_hint_and_the_config_needs_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import l1ra_core\n"  # the NumPy core, config included, must not need torch
        "l1ra_core.L1RAConfig.from_dict(l1ra_core.L1RAConfig(target_modules=['q']).to_dict())\n"
        "try:\n    import l1ra_core.torch\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'sfbow[torch]'" in out.stdout
