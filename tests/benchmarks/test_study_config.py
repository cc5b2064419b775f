"""The LoRA-rank bias study's StudyConfig follows the record convention: checked values stored (NumPy
scalars become Python numbers, so the run files' json works), to_dict/from_dict round-trip, unknown keys
refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.lora_rank.config import PROFILES, StudyConfig


@given(st.sampled_from([int, np.int32, np.int64]), st.integers(1, 500), st.lists(st.integers(1, 64), min_size=1,
                                                                                  max_size=6))
def test_numpy_settings_are_stored_as_python_numbers(int_type, steps, ranks):
    config = StudyConfig(steps=int_type(steps), ranks=[int_type(r) for r in ranks], dev_fraction=np.float32(0.25))
    assert type(config.steps) is int and all(type(r) is int for r in config.ranks) and type(config.dev_fraction) is float
    assert StudyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_profiles_round_trip_and_unknown_keys_are_refused():
    for config in PROFILES.values():
        assert StudyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown StudyConfig keys \['rank'\]"):
        StudyConfig.from_dict({"rank": 8})
