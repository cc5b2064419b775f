"""Tests for rank_report: grouping by layer and module type, exports and the text table."""

from __future__ import annotations

import json
import re

import pytest

from l1ra_core import RankReport, allocate, plot_rank_heatmap, rank_report

RANKS = {
    "encoder.layer.0.attention.self.query": 4,
    "encoder.layer.0.attention.self.key": 2,
    "encoder.layer.1.attention.self.query": 6,
    "encoder.layer.10.output.dense": 8,
    "pooler.dense": 1,
}


KEY, QUERY, OUT, POOLER = "attention.self.key", "attention.self.query", "output.dense", "pooler.dense"


def test_groups_by_layer_number_and_what_follows_it():
    report = rank_report(RANKS)
    assert isinstance(report, RankReport)
    assert report.layers == (0, 1, 10, None)  # numeric order; unmatched names last
    assert report.module_types == (KEY, QUERY, OUT, POOLER)  # unmatched names are their own type
    assert report.grid.tolist() == [[2, 4, 0, 0], [0, 6, 0, 0], [0, 0, 8, 0], [0, 0, 0, 1]]
    assert report.by_layer == {0: 6, 1: 6, 10: 8, None: 1}
    assert report.by_module_type == {KEY: 2, QUERY: 10, OUT: 8, POOLER: 1}
    assert report.layer_labels == ["0", "1", "10", "-"]
    assert report.total == 21
    assert not report.grid.flags.writeable


def test_the_default_grouping_keeps_the_dense_layers_of_a_block_apart():
    report = rank_report({"encoder.layer.3.attention.output.dense": 2, "encoder.layer.3.output.dense": 5,
                          "0.fc": 1, "blocks.1": 4})
    assert report.by_module_type == {"attention.output.dense": 2, "output.dense": 5, "fc": 1, "blocks.1": 4}
    assert report.by_layer == {0: 1, 3: 7, None: 4}  # a leading "0." is a layer; a trailing ".1" is not


def test_custom_module_type_and_layer_pattern():
    def family(name: str) -> str:
        return "attention" if ".attention." in name else "other"

    report = rank_report(RANKS, module_type=family, layer_pattern=r"layer\.\d+")
    assert report.module_types == ("attention", "other")
    assert report.layers == ("layer.0", "layer.1", "layer.10", None)
    assert report.by_module_type == {"attention": 12, "other": 9}
    assert rank_report(RANKS, layer_pattern=re.compile(r"layer\.(\d+)")).by_layer[10] == 8


def test_accepts_an_allocation_plan():
    plan = allocate({"model.layers.0.mlp.up": [1.0, 0.0], "model.layers.1.mlp.up": [0.5]}, budget=3)
    assert rank_report(plan).by_layer == {0: 1, 1: 2}


def test_exports():
    report = rank_report(RANKS)
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["total"] == 21
    assert as_dict["ranks"] == RANKS
    assert as_dict["grid"] == report.grid.tolist()
    records = report.to_records()
    assert records[0] == {
        "name": "encoder.layer.0.attention.self.key", "layer": 0, "module_type": KEY, "rank": 2
    }
    assert len(records) == len(RANKS)


def test_records_make_a_dataframe():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(rank_report(RANKS).to_records())
    assert frame.groupby("module_type")["rank"].sum().to_dict() == {KEY: 2, QUERY: 10, OUT: 8, POOLER: 1}


def test_table():
    expected = "\n".join(
        [
            "layer  dense  key  query  total",
            "0          0    2      4      6",
            "1          0    0      6      6",
            "10         8    0      0      8",
            "-          1    0      0      1",
            "total      9    2     10     21",
        ]
    )
    report = rank_report(RANKS, module_type=lambda name: name.rsplit(".", 1)[-1])
    assert report.table() == expected
    assert str(report) == expected


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: rank_report([("a", 1)]), TypeError, "must be an AllocationPlan or a name -> rank mapping"),
        (lambda: rank_report({"a.q": -1}), ValueError, "rank of 'a.q' must be an int >= 0"),
        (lambda: rank_report({"a.q": 1.5}), TypeError, "rank of 'a.q' must be an int"),
        (lambda: rank_report({"a.q": 1}, module_type=len), TypeError, r"module_type\('a.q'\) must return"),
        (lambda: rank_report({5: 3}), TypeError, "adapter names must be str, got int 5"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_heatmap_png_needs_no_torch(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_rank_heatmap(RANKS, tmp_path / "ranks.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ranks.png"]
    with pytest.raises(ValueError, match="no ranks"):
        plot_rank_heatmap({}, tmp_path / "empty.png")
