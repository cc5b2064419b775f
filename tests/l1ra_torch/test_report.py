"""Rank reporting in the torch backend: the heatmap PNG and the controller's report."""

from __future__ import annotations

import torch

from l1ra_core import L1RAConfig, rank_report
from l1ra_core.torch import (
    L1RAController,
    adapter_parameter_groups,
    inject_adapters,
)

RANKS = {
    "encoder.layer.0.attention.self.query": 2,
    "encoder.layer.0.intermediate.dense": 9,
    "encoder.layer.1.attention.self.query": 5,
    "encoder.layer.10.attention.self.query": 1,
    "pooler.dense": 3,
}


def test_controller_rank_report(tiny_net):
    config = L1RAConfig(target_modules=["up", "down"], initial_rank=3, update_interval=10)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.AdamW(adapter_parameter_groups(tiny_net, lr=1e-3, gate_lr=1e-2))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 0.0]
    controller = L1RAController(tiny_net, config, optimizer)
    report = controller.rank_report()
    assert report.to_dict() == rank_report(controller.ranks).to_dict(), "the controller's report uses the one default grouping"
    assert report.by_module_type == {"up": 6, "down": 6} and report.by_layer == {0: 6, 1: 6}
