"""export_peft on models whose module names are suffixes of each other, loaded back through PEFT."""

from __future__ import annotations

import json

import pytest
import torch

from l1ra_core import L1RAConfig
from l1ra_core.torch import L1RAController, export_peft, inject_adapters

peft = pytest.importorskip("peft")


class Nested(torch.nn.Module):
    """``a.x`` and ``z.a.x`` are both Linear layers (one name is a suffix of the other), and ``y.x`` is a
    Linear layer L1RA does not adapt although its name ends with ``x``."""

    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        self.a = torch.nn.ModuleDict({"x": torch.nn.Linear(dim, dim)})
        self.z = torch.nn.ModuleDict({"a": torch.nn.ModuleDict({"x": torch.nn.Linear(dim, dim)})})
        self.y = torch.nn.ModuleDict({"x": torch.nn.Linear(dim, dim)})

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.y["x"](self.z["a"]["x"](torch.tanh(self.a["x"](t))))


def _fresh() -> Nested:
    torch.manual_seed(0)
    return Nested()


def test_suffix_names_get_their_own_rank_and_only_adapted_modules_are_wrapped(tmp_path):
    model = _fresh()
    config = L1RAConfig(target_modules=("a.x",), initial_rank=4, budget=8, update_interval=1000)
    adapters = inject_adapters(model, config)
    assert sorted(adapters) == ["a.x", "z.a.x"]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    controller = L1RAController(model, config, optimizer)
    with torch.no_grad():
        adapters["a.x"].gate[:3] = 0.0
        for layer in adapters.values():
            layer.lora_B.normal_()
    controller.reallocate()
    assert controller.ranks == {"a.x": 1, "z.a.x": 7}
    x = torch.randn(5, 12)
    with torch.no_grad():
        expected = model(x)

    export_peft(model, config, tmp_path)
    loaded = peft.PeftModel.from_pretrained(_fresh(), tmp_path).eval()
    wrapped = sorted(
        name.removeprefix("base_model.model.")
        for name, module in loaded.named_modules()
        if isinstance(module, peft.tuners.lora.LoraLayer)
    )
    assert wrapped == ["a.x", "z.a.x"]
    inner = loaded.base_model.model
    assert inner.a["x"].r["default"] == 1
    assert inner.z["a"]["x"].r["default"] == 7
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)
    meta = json.loads((tmp_path / "adapter_config.json").read_text())
    assert isinstance(meta["target_modules"], str)  # a full-match regex, not PEFT's suffix-matched list
