"""L1RAController: proximal L1 step, reallocation with optimizer-state surgery, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l1ra_core import L1RAConfig
from l1ra_core.torch import (
    L1RAController,
    adapter_layers,
    adapter_parameter_groups,
    inject_adapters,
    merge_adapters,
)

TARGETS = ["up", "down"]


def _setup(net, device, optimizer_cls=torch.optim.AdamW, initial_rank=4, **config_kwargs):
    net.to(device)
    config = L1RAConfig(target_modules=TARGETS, initial_rank=initial_rank, **{"update_interval": 1000, **config_kwargs})
    inject_adapters(net, config)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = optimizer_cls(params, lr=1e-2, **({"momentum": 0.9} if optimizer_cls is torch.optim.SGD else {}))
    return config, optimizer, L1RAController(net, config, optimizer)


def _train(net, optimizer, steps, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 16, generator=generator).to(device)
        y = torch.randn(8, 3, generator=generator).to(device)
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()


def test_proximal_step_soft_thresholds_and_clips(tiny_net, device):
    _, optimizer, controller = _setup(tiny_net, device, gate_lr=0.5, l1_lambda=0.1)  # t = 0.05
    gate = adapter_layers(tiny_net)["blocks.0.up"].gate
    with torch.no_grad():
        gate.copy_(torch.tensor([1.0, 0.5, 0.03, -0.2], device=device))
    optimizer.step()  # no gradients: only the controller's hook acts
    torch.testing.assert_close(gate.detach(), torch.tensor([0.95, 0.45, 0.0, 0.0], device=device))
    assert controller.step_count == 1


def test_proximal_step_follows_the_optimizer_lr_by_default(tiny_net):
    _, optimizer, _ = _setup(tiny_net, "cpu", l1_lambda=2.0)
    optimizer.param_groups[0]["lr"] = 0.1  # e.g. set by an LR scheduler
    optimizer.step()
    torch.testing.assert_close(adapter_layers(tiny_net)["blocks.1.down"].gate.detach(), torch.full((4,), 0.8))


def test_proximal_step_never_synchronises_with_the_host(tiny_net, device, monkeypatch):
    _, optimizer, controller = _setup(tiny_net, device, l1_lambda=1.0)
    for method in ("item", "cpu", "tolist", "numpy", "__bool__"):
        monkeypatch.setattr(torch.Tensor, method, lambda *a, _m=method: pytest.fail(f"host sync via {_m}"))
    controller._proximal_step()
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
        try:
            controller._proximal_step()
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("optimizer_cls", [torch.optim.AdamW, torch.optim.SGD])
def test_reallocation_preserves_output_budget_and_optimizer_state(tiny_net, device, optimizer_cls):
    config, optimizer, controller = _setup(tiny_net, device, optimizer_cls=optimizer_cls, initial_rank=4)
    _train(tiny_net, optimizer, 3, device)
    layers = adapter_layers(tiny_net)
    pruned = layers["blocks.0.up"]
    with torch.no_grad():
        pruned.gate[[0, 2]] = 0.0
    state_key = "exp_avg" if optimizer_cls is torch.optim.AdamW else "momentum_buffer"
    old_a, old_state = pruned.lora_A, optimizer.state[pruned.lora_A][state_key].clone()
    x = torch.randn(6, 16, device=device)
    with torch.no_grad():
        before = tiny_net(x)

    plan = controller.reallocate()

    with torch.no_grad():
        torch.testing.assert_close(tiny_net(x), before)
    assert sum(controller.ranks.values()) == controller.budget == 4 * len(layers)
    assert pruned.rank == 2 and controller.rank_log[controller.step_count] == controller.ranks
    assert plan.adapters["blocks.0.up"].pruned == 2
    torch.testing.assert_close(optimizer.state[pruned.lora_A][state_key], old_state[[1, 3]])
    assert old_a not in optimizer.state
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for layer in layers.values():
        assert {id(layer.lora_A), id(layer.lora_B), id(layer.gate)} <= held
    grown = [layer for layer in layers.values() if layer.rank > 4]
    assert grown, "the freed ranks went somewhere"
    for layer in grown:
        state = optimizer.state[layer.lora_B][state_key]
        assert torch.all(state[:, 4:] == 0) and state.shape == layer.lora_B.shape
        assert torch.all(layer.gate[4:] == 1)
    _train(tiny_net, optimizer, 2, device, seed=1)  # training goes on with the new parameters


def test_schedule_runs_through_the_optimizer_hook(tiny_net):
    _, optimizer, controller = _setup(tiny_net, "cpu", update_interval=2, gate_lr=0.3, l1_lambda=1.0)
    with torch.no_grad():
        adapter_layers(tiny_net)["blocks.1.up"].gate[:2] = 0.05
    _train(tiny_net, optimizer, 4, "cpu")
    assert controller.step_count == 4
    assert len(controller.rank_log) > 1 and controller.last_plan is not None
    assert sum(controller.ranks.values()) == controller.budget


def test_manual_step_mode(tiny_net):
    config = L1RAConfig(target_modules=TARGETS, initial_rank=2, update_interval=5, gate_lr=0.1, l1_lambda=1.0)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.SGD([p for p in tiny_net.parameters() if p.requires_grad], lr=0.1)
    controller = L1RAController(tiny_net, config, optimizer, hook=False)
    optimizer.step()
    assert controller.step_count == 0
    controller.step()
    assert controller.step_count == 1
    torch.testing.assert_close(adapter_layers(tiny_net)["blocks.0.up"].gate.detach(), torch.full((2,), 0.9))


def test_manual_step_with_hook_is_refused(tiny_net):
    _, _, controller = _setup(tiny_net, "cpu")
    with pytest.raises(RuntimeError, match="twice"):
        controller.step()


def test_optimizer_without_adapter_parameters_is_refused(tiny_net):
    config = L1RAConfig(target_modules=TARGETS, initial_rank=2, update_interval=5)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.AdamW(tiny_net.head.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="does not hold the L1RA parameters.*after inject_adapters"):
        L1RAController(tiny_net, config, optimizer)


def test_resize_after_optimizer_lost_the_parameters_is_refused(tiny_net):
    _, optimizer, controller = _setup(tiny_net, "cpu")
    layer = adapter_layers(tiny_net)["blocks.0.up"]
    with torch.no_grad():
        layer.gate[0] = 0
    optimizer.param_groups[0]["params"] = [
        torch.nn.Parameter(p.detach().clone()) if p is layer.lora_A else p for p in optimizer.param_groups[0]["params"]
    ]
    with pytest.raises(ValueError, match="other tensors of the same shapes"):
        controller.reallocate()
    assert layer.rank == 4, "nothing was resized"


def test_unresizable_optimizer_state_is_refused(tiny_net):
    adafactor = getattr(torch.optim, "Adafactor", None)
    if adafactor is None:
        pytest.skip("torch.optim.Adafactor not available")
    _, optimizer, controller = _setup(tiny_net, "cpu", optimizer_cls=adafactor)
    _train(tiny_net, optimizer, 1, "cpu")
    with torch.no_grad():
        adapter_layers(tiny_net)["blocks.0.up"].gate[0] = 0
    with pytest.raises(ValueError, match="cannot be resized"):
        controller.reallocate()


@pytest.mark.parametrize(("budget", "message"), [(3, "below min_rank"), (10_000, "exceeds")])
def test_bad_budget(tiny_net, budget, message):
    config = L1RAConfig(target_modules=TARGETS, initial_rank=2, budget=budget, update_interval=5)
    inject_adapters(tiny_net, config)
    with pytest.raises(ValueError, match=message):
        L1RAController(tiny_net, config)


def test_fraction_schedule_needs_total_steps(tiny_net):
    config = L1RAConfig(target_modules=TARGETS, initial_rank=2, update_fraction=0.1)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.AdamW([p for p in tiny_net.parameters() if p.requires_grad])
    with pytest.raises(ValueError, match="total_steps"):
        L1RAController(tiny_net, config, optimizer)
    controller = L1RAController(tiny_net, config, optimizer, total_steps=50)
    assert controller.optimizer is optimizer


def test_model_without_adapters(tiny_net):
    with pytest.raises(ValueError, match="inject_adapters"):
        L1RAController(tiny_net, L1RAConfig(target_modules=TARGETS))


def test_training_merged_adapters_is_refused(tiny_net):
    _, optimizer, controller = _setup(tiny_net, "cpu")
    merge_adapters(tiny_net)
    with pytest.raises(RuntimeError, match="unmerge_adapters"):
        optimizer.step()
    with pytest.raises(RuntimeError, match="unmerge_adapters"):
        controller.reallocate()


def test_data_parallel_training_rebuilds_its_wrapper_on_resize(tiny_net, tmp_path):
    """DDP (gloo, one process): on_resize re-wraps the model, so training goes on after a reallocation."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        config = L1RAConfig(target_modules=TARGETS, initial_rank=4, update_interval=2, gate_lr=0.3, l1_lambda=1.0)
        inject_adapters(tiny_net, config)
        optimizer = torch.optim.AdamW([p for p in tiny_net.parameters() if p.requires_grad], lr=1e-2)
        wrapper = {"ddp": DistributedDataParallel(tiny_net)}
        resizes = []

        def rewrap(plan) -> None:
            resizes.append(plan)
            wrapper["ddp"] = DistributedDataParallel(tiny_net)

        controller = L1RAController(tiny_net, config, optimizer, on_resize=rewrap)
        with torch.no_grad():
            adapter_layers(tiny_net)["blocks.1.up"].gate[:2] = 0.05
        generator = torch.Generator().manual_seed(0)
        for _ in range(6):
            x, y = torch.randn(8, 16, generator=generator), torch.randn(8, 3, generator=generator)
            torch.nn.functional.mse_loss(wrapper["ddp"](x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
        assert resizes and all(plan.changed for plan in resizes)
        assert sum(controller.ranks.values()) == controller.budget
    finally:
        dist.destroy_process_group()


def test_small_l1_steps_shrink_the_gates_of_a_bf16_model(tiny_net):
    # t = 1e-3: in bf16, 1 - 1e-3 rounds back to 1 and the gates would never move.
    tiny_net.to(torch.bfloat16)
    _, optimizer, controller = _setup(tiny_net, "cpu", optimizer_cls=torch.optim.SGD, gate_lr=1e-2, l1_lambda=0.1)
    gates = [layer.gate for layer in adapter_layers(tiny_net).values()]
    assert all(g.dtype == torch.float32 for g in gates)
    for _ in range(5):
        optimizer.step()  # no gradients: only the proximal step acts
    for gate in gates:
        torch.testing.assert_close(gate.detach(), torch.full_like(gate, 1 - 5e-3))
    x = torch.randn(2, 16, dtype=torch.bfloat16)
    assert tiny_net(x).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda params: torch.optim.Rprop(params, lr=1e-2), "Rprop"),
        (lambda params: torch.optim.Adagrad(params, lr=1e-2, initial_accumulator_value=0.1),
         "initial_accumulator_value"),
    ],
)
def test_optimizers_whose_fresh_state_is_not_zero_are_refused(tiny_net, make, message):
    config = L1RAConfig(target_modules=TARGETS, initial_rank=4, update_interval=5)
    inject_adapters(tiny_net, config)
    optimizer = make([p for p in tiny_net.parameters() if p.requires_grad])
    with pytest.raises(ValueError, match=message):
        L1RAController(tiny_net, config, optimizer)


def test_adagrad_with_zero_initial_accumulator_is_accepted(tiny_net):
    config = L1RAConfig(target_modules=TARGETS, initial_rank=4, update_interval=5)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.Adagrad([p for p in tiny_net.parameters() if p.requires_grad], lr=1e-2)
    assert L1RAController(tiny_net, config, optimizer).optimizer is optimizer


def test_reallocating_by_hand_before_the_first_step_keeps_the_initial_rank_log(tiny_net):
    _, optimizer, controller = _setup(tiny_net, "cpu", initial_rank=4, budget=16)
    initial = controller.ranks
    with torch.no_grad():
        adapter_layers(tiny_net)["blocks.0.up"].gate[:2] = 0.0
    controller.reallocate()
    assert controller.ranks != initial
    assert controller.rank_log == {0: initial}
    # The state still round-trips: the current ranks are saved apart from the log.
    state = controller.state_dict()
    other = L1RAController(tiny_net, controller.config, optimizer, hook=False)
    other.load_state_dict(state)
    assert other.rank_log == {0: initial}


def test_the_in_place_proximal_step_is_l1ra_core_prox_l1(tiny_net):
    """The controller's foreach kernels compute exactly l1ra_core.prox_l1 with the box [0, 1], on any gates."""
    from l1ra_core import prox_l1

    config = L1RAConfig(target_modules=TARGETS, initial_rank=8, update_interval=1000, l1_lambda=0.7)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.SGD(adapter_parameter_groups(tiny_net, lr=0.0, gate_lr=0.03), lr=0.0)
    controller = L1RAController(tiny_net, config, optimizer, hook=False)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in controller.adapters.values():  # values below 0, inside [0, lr * lambda], above 1
            layer.gate.copy_(torch.rand(layer.rank, generator=generator) * 2.0 - 0.5)
    before = {name: layer.gate.detach().numpy().copy() for name, layer in controller.adapters.items()}
    optimizer.step()  # no gradients: nothing moves but the proximal step
    controller.step()
    for name, layer in controller.adapters.items():
        expected = prox_l1(before[name], 0.03, 0.7, nonnegative=True, upper=1.0)
        np.testing.assert_array_equal(layer.gate.detach().numpy(), expected)
