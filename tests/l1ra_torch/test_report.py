"""Rank reporting: the layer x module-type grid, the heatmap PNG and l1ra_core.rank_report."""

from __future__ import annotations

import pytest
import torch

from l1ra_core.torch import (
    L1RAConfig,
    L1RAController,
    adapter_parameter_groups,
    inject_adapters,
    plot_rank_heatmap,
    module_type,
    report_ranks,
)

RANKS = {
    "encoder.layer.0.attention.self.query": 2,
    "encoder.layer.0.intermediate.dense": 9,
    "encoder.layer.1.attention.self.query": 5,
    "encoder.layer.10.attention.self.query": 1,
    "pooler.dense": 3,
}


def test_report_rows_are_layers_columns_are_module_types():
    report = report_ranks(RANKS)
    assert list(report.layers) == [0, 1, 10, None]
    assert list(report.module_types) == ["attention.self.query", "intermediate.dense", "pooler.dense"]
    assert report.grid.tolist() == [[2, 9, 0], [5, 0, 0], [1, 0, 0], [0, 0, 3]]
    assert module_type("encoder.layer.3.attention.output.dense") == "attention.output.dense"


def test_heatmap_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_rank_heatmap(RANKS, tmp_path / "ranks.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ranks.png"]
    with pytest.raises(ValueError, match="no ranks"):
        plot_rank_heatmap({}, tmp_path / "empty.png")


def test_controller_rank_report(tiny_net):
    config = L1RAConfig(target_modules=["up", "down"], r=3, update_interval=10)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.AdamW(adapter_parameter_groups(tiny_net, lr=1e-3, gate_lr=1e-2))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 0.0]
    controller = L1RAController(tiny_net, config, optimizer)
    report = controller.rank_report()
    assert report is not None and len(report.to_records()) > 0
