"""The record convention: checked values are stored (numpy scalars become Python numbers, so every record
survives json), to_dict/from_dict round-trip, unknown keys are refused by name; registries refuse unknown
kinds and options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evotox.config import SearchConfig
from evotox.runner import BackendSpec, RunSpec
from l1ra_core.config import L1RAConfig
from sfbow_common.records import Registry
from sfbow_llm.oracles import OracleSpec

ints = st.sampled_from([int, np.int32, np.int64])
floats = st.sampled_from([float, np.float32, np.float64])


@given(ints, floats, st.integers(1, 50), st.floats(0.0, 1.0))
def test_search_config_stores_checked_values(int_type, float_type, iterations, factor):
    config = SearchConfig(iterations=int_type(iterations), gaslight_factor=float_type(factor), random_seed=int_type(3))
    assert type(config.iterations) is int and type(config.gaslight_factor) is float and config.iterations == iterations
    data = json.loads(json.dumps(config.to_dict()))
    assert SearchConfig.from_dict(data) == config


@given(ints, floats, st.integers(1, 64), st.integers(1, 1000))
def test_l1ra_config_stores_checked_values(int_type, float_type, rank, interval):
    config = L1RAConfig(["query"], initial_rank=int_type(rank), alpha=float_type(2.0), update_interval=int_type(interval))
    assert type(config.initial_rank) is int and type(config.alpha) is float
    assert L1RAConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@given(st.text(st.characters(categories=["Ll"]), min_size=1, max_size=8))
def test_unknown_keys_are_refused_by_name(key):
    for record, data in ((SearchConfig, {}), (L1RAConfig, {"target_modules": ["q"]})):
        known = {f for f in record.__dataclass_fields__}
        if key in known:
            continue
        with pytest.raises(ValueError, match=f"unknown {record.__name__} keys.*'{key}'"):
            record.from_dict({**data, key: 1})


def test_run_spec_round_trips_with_flat_specs():
    spec = RunSpec(seeds=["a seed"], search=SearchConfig(methods=("seeds",), iterations=np.int64(2)),
                   sut={"kind": "http", "base_url": ["http://127.0.0.1:1/v1"], "model": "m"},
                   oracle=OracleSpec("profanity"))
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["sut"] == {"kind": "http", "base_url": ["http://127.0.0.1:1/v1"], "model": "m"}  # on-disk keys
    assert data["generator"] == {"kind": "local", "model": None} and data["oracle"] == {"kind": "profanity"}
    assert RunSpec.from_dict(data) == spec
    with pytest.raises(ValueError, match="unknown run description keys.*'budget'"):
        RunSpec.from_dict({**data, "budget": 3})
    with pytest.raises(ValueError, match="unknown backend 'gpt5'"):
        RunSpec.from_dict({**data, "sut": {"kind": "gpt5"}})


def test_registry_refuses_unknown_kinds_and_options():
    registry = Registry("thing", {"fraction": "fractions:Fraction"})
    assert registry.build("fraction", {"numerator": 1, "denominator": 2}) == 0.5
    with pytest.raises(ValueError, match="unknown thing 'x'; choose from 'fraction'"):
        registry.build("x", {})
    with pytest.raises(ValueError, match="unknown oracle 'detoxify'"):
        OracleSpec("detoxify")
    with pytest.raises(ValueError, match=r"backend 'http' has no options \['modle'\]"):
        BackendSpec("http", {"base_url": "http://127.0.0.1:1/v1", "modle": "m"}).build()


@given(ints, st.dictionaries(st.sampled_from(["a.q", "a.v", "b.q"]), st.integers(1, 64), min_size=1))
def test_adapter_metadata_stores_checked_values_and_round_trips(int_type, ranks):
    from l1ra_core.adapter_files import AdapterFileError, AdapterMetadata

    metadata = AdapterMetadata(L1RAConfig(["q", "v"]), {n: int_type(r) for n, r in ranks.items()},
                               {n: (int_type(8), int_type(4)) for n in ranks}, "0" * 64)
    data = json.loads(json.dumps(metadata.to_dict()))
    assert set(data) == {"format", "format_version", "config", "rank_pattern", "shapes", "weights_sha256",
                         "metadata_sha256"}  # the file format's keys
    assert AdapterMetadata.from_dict(data) == metadata
    with pytest.raises(AdapterFileError, match=r"unknown keys \['note'\]"):
        AdapterMetadata.from_dict({**data, "note": "x"})
