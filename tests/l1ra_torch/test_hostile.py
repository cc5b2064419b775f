"""Hostile input to the torch backend: damaged adapter files, foreign optimizer state, half-applied state.

Every case must end in a clear error naming the file or the argument, with model, optimizer and controller
left exactly as they were (validate, then mutate).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from l1ra_core import L1RAConfig
from l1ra_core.adapter_files import CONFIG_FILE, WEIGHTS_FILE
from l1ra_core.torch import (
    L1RAController,
    adapter_layers,
    inject_adapters,
    load_adapters,
    load_training_state,
    save_adapters,
    save_training_state,
)

from .conftest import TinyNet
from .test_checkpoint import _batches, _config, _fresh, _train
from .test_checkpoint_unit import _refused


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An adapter directory and training state after a reallocation (ranks differ), and its file bytes."""
    directory = tmp_path_factory.mktemp("saved")
    config = _config()
    net, optimizer, controller = _fresh("cpu", config)
    _train(net, optimizer, _batches("cpu", 4))  # reallocates at step 3
    save_adapters(net, config, directory)
    save_training_state(directory, optimizer, controller)
    return directory


def _copy(saved, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def _assert_untouched(net):
    assert not adapter_layers(net), "a refused load leaves the model without adapters"
    assert all(p.requires_grad for p in net.parameters()), "and does not freeze it"


# --- class 3: adapter files that are damaged, truncated or edited -------------------------------------------

def _same_json(a: bytes, b: bytes) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def _truncate_or_flip(raw: bytes, data, protected_tail: int) -> bytes:
    """``raw`` cut at a drawn length, or with one drawn byte flipped (never in the last ``protected_tail``)."""
    raw = bytearray(raw)
    end = len(raw) - protected_tail
    if data.draw(st.booleans(), label="truncate"):
        return bytes(raw[: data.draw(st.integers(0, end - 1), label="length")])
    raw[data.draw(st.integers(0, end - 1), label="offset")] ^= data.draw(st.integers(1, 255), label="mask")
    return bytes(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), name=st.sampled_from([WEIGHTS_FILE, CONFIG_FILE]))
def test_a_truncated_or_flipped_adapter_file_is_refused_naming_it(saved, tmp_path_factory, data, name):
    directory = _copy(saved, tmp_path_factory.mktemp("damaged"))
    path = directory / name
    raw = path.read_bytes()
    damaged = _truncate_or_flip(raw, data, protected_tail=1 if name == CONFIG_FILE else 0)
    if name == CONFIG_FILE:  # whitespace turned into other whitespace is the same JSON, not damage
        assume(not _same_json(raw, damaged))
    path.write_bytes(damaged)
    net = TinyNet()
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.")):
        load_adapters(net, directory)
    _assert_untouched(net)


def test_every_truncation_of_the_weights_file_is_refused(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    path = directory / WEIGHTS_FILE
    raw = (saved / WEIGHTS_FILE).read_bytes()
    for length in range(0, len(raw), max(1, len(raw) // 97)):
        path.write_bytes(raw[:length])
        with pytest.raises(ValueError, match="truncated, damaged"):
            load_adapters(TinyNet(), directory)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta.pop("shapes"), r"lacks the keys \['shapes'\]"),
        (lambda meta: meta["config"].pop("target_modules"), "needs target_modules"),
        (lambda meta: meta["config"].update({"r": 4}), r"unknown L1RAConfig keys \['r'\]"),
        (lambda meta: meta["config"].update({"alpha": -1}), "alpha must be finite and > 0"),
        (lambda meta: meta.update({"config": [1, 2]}), "read from a mapping"),
        (lambda meta: meta["rank_pattern"].update({"blocks.0.up": 0}), "rank 0"),
        (lambda meta: meta["rank_pattern"].update({"blocks.0.up": True}), "rank True"),
        (lambda meta: meta["shapes"].update({"blocks.0.up": [16]}), r"shape \[16\]"),
        (lambda meta: meta["shapes"].pop("blocks.0.up"), "must name the same"),
        (lambda meta: meta.update({"format_version": 1}), "save the adapters again"),
    ],
)
def test_a_config_file_with_missing_or_wrong_keys_is_refused(saved, tmp_path, edit, message):
    """Edited with the checksum recomputed (as an attacker would): the content checks still hold."""
    from .test_checkpoint import resign

    directory = _copy(saved, tmp_path)
    path = directory / CONFIG_FILE
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    resign(directory)
    net = TinyNet()
    with pytest.raises(ValueError, match=message):
        load_adapters(net, directory)
    _assert_untouched(net)


def test_an_edited_config_without_a_new_checksum_is_refused(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    path = directory / CONFIG_FILE
    path.write_text(path.read_text().replace('"alpha": 8.0', '"alpha": 80.0'))
    with pytest.raises(ValueError, match="does not match its own checksum"):
        load_adapters(TinyNet(), directory)
    path.write_text("[" * 100_000)
    with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
        load_adapters(TinyNet(), directory)


def test_loading_adapters_twice_names_the_real_cause(saved):
    net = TinyNet()
    load_adapters(net, saved)
    with pytest.raises(ValueError, match="already has L1RA adapters"):
        load_adapters(net, saved)


# --- class 2: state that must never be half-applied ----------------------------------------------------------

def _optimizer_snapshot(optimizer):
    state = optimizer.state_dict()
    return json.dumps({"groups": state["param_groups"], "keys": {k: sorted(v) for k, v in state["state"].items()}},
                      sort_keys=True, default=str)


@pytest.mark.parametrize("other", [torch.optim.SGD, torch.optim.RMSprop])
def test_training_state_of_another_optimizer_type_is_refused_before_anything_changes(saved, other):
    net = TinyNet()
    config = load_adapters(net, saved)
    optimizer = other([p for p in net.parameters() if p.requires_grad], lr=1e-2, momentum=0.9)
    controller = L1RAController(net, config, optimizer)
    _train(net, optimizer, _batches("cpu", 1))
    before = _optimizer_snapshot(optimizer)
    with pytest.raises(ValueError, match=f"holds AdamW state, but the optimizer is {other.__name__}"):
        load_training_state(saved, optimizer, controller)
    assert _optimizer_snapshot(optimizer) == before and controller.step_count == 1
    _train(net, optimizer, _batches("cpu", 1))  # still usable


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("l1ra_training_state.json", lambda raw: raw[:100], "l1ra_training_state.json cannot be read"),
        ("l1ra_training_state.json", lambda raw: raw.replace(b'"tuple"', b'"set"'), "its own checksum"),
        ("l1ra_training_state.json", lambda raw: b'{"format": "l1ra"}', "is not an L1RA training state"),
        ("l1ra_training_state.safetensors", lambda raw: raw[:-1], "does not match the checksum"),
        ("l1ra_training_state.safetensors", lambda raw: raw[:50] + bytes([raw[50] ^ 1]) + raw[51:], "checksum"),
    ],
)
def test_a_damaged_training_state_is_refused_naming_it(saved, tmp_path, name, damage, message):
    directory = _copy(saved, tmp_path)
    path = directory / name
    path.write_bytes(damage(path.read_bytes()))
    _refused(directory, message)


def test_the_training_state_is_pickle_free_json_and_safetensors(saved):
    assert sorted(p.name for p in saved.iterdir() if "training" in p.name) == [
        "l1ra_training_state.json", "l1ra_training_state.safetensors"
    ]
    document = json.loads((saved / "l1ra_training_state.json").read_text())
    assert document["format"] == "l1ra-training-state"


def test_set_total_steps_refused_stores_nothing(tiny_net):
    config = L1RAConfig(target_modules=["up", "down"], initial_rank=2, update_fraction=0.5)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.AdamW([p for p in tiny_net.parameters() if p.requires_grad])
    controller = L1RAController(tiny_net, config, optimizer, total_steps=10)
    for bad, error in [(0, ValueError), (-3, ValueError), (2.5, TypeError), (1, ValueError)]:
        with pytest.raises(error):
            controller.set_total_steps(bad)  # 1 step: 0.5 * 1 rounds to a period of 0
        assert controller.total_steps == 10 and controller._schedule.period == 5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(step_count=-1), r"step_count'\] must be an int >= 0"),
        (lambda s: s.update(total_steps=0), r"total_steps'\] must be an int >= 1"),
        (lambda s: s.update(rank_log={0: {"blocks.0.up": 0}}), "must be an int >= 1"),
        (lambda s: s.update(rank_log=[1]), "must be a mapping"),
        (lambda s: s.update(generator=torch.zeros(3)), "not a torch.Generator state"),
        (lambda s: s.pop("ranks"), r"lacks \['ranks'\]"),
        (lambda s: s.update(budget=1), "budget 1"),
    ],
)
def test_a_controller_state_refused_half_way_leaves_nothing_half_restored(tiny_net, edit, message):
    config = L1RAConfig(target_modules=["up", "down"], initial_rank=2, update_interval=2, l1_lambda=0.0)
    inject_adapters(tiny_net, config)
    optimizer = torch.optim.AdamW([p for p in tiny_net.parameters() if p.requires_grad])
    controller = L1RAController(tiny_net, config, optimizer, total_steps=50)
    state = controller.state_dict()
    state.update(step_count=7, rank_log={0: controller.ranks, 4: controller.ranks})
    edit(state)
    rng_before = controller.generator.get_state().clone()
    with pytest.raises((ValueError, TypeError), match=message):
        controller.load_state_dict(state)
    assert controller.step_count == 0 and list(controller.rank_log) == [0] and controller.total_steps == 50
    assert torch.equal(controller.generator.get_state(), rng_before)


# --- class 7: smaller inconsistencies -------------------------------------------------------------------------

def test_bf16_gates_are_refused_naming_the_adapter(tiny_net):
    config = L1RAConfig(target_modules=["up"], initial_rank=2, update_interval=2)
    inject_adapters(tiny_net, config)
    tiny_net.to(torch.bfloat16)  # casting after injection turns the gates into bf16 too
    with pytest.raises(TypeError, match=r"gate of adapter 'blocks.0.up' is torch.bfloat16.*before inject_adapters"):
        L1RAController(tiny_net, config)


def test_one_linear_reachable_at_two_names_is_refused(tiny_net):
    tiny_net.alias = tiny_net.blocks[0]["up"]  # a shared (tied) layer
    with pytest.raises(ValueError, match=r"'blocks.0.up' is also reachable as \['alias'\]"):
        inject_adapters(tiny_net, L1RAConfig(target_modules=["up"], initial_rank=2))
    assert not adapter_layers(tiny_net)


def test_merging_twice_changes_nothing_the_second_time(tiny_net):
    from l1ra_core.torch import merge_adapters, unmerge_adapters

    inject_adapters(tiny_net, L1RAConfig(target_modules=["up", "down"], initial_rank=2))
    layers = list(adapter_layers(tiny_net).values())
    layers[1].merge()
    weights = [layer.base_layer.weight.detach().clone() for layer in layers]
    with pytest.raises(RuntimeError, match="already merged"):
        merge_adapters(tiny_net)
    with pytest.raises(RuntimeError, match="not merged"):
        unmerge_adapters(tiny_net)
    assert all(torch.equal(w, layer.base_layer.weight) for w, layer in zip(weights, layers))


# --- issue 22, item 16: alpha, target_modules regexes, the gate lr's parameter group ------------------------

@pytest.mark.parametrize("alpha", [1e308, float("inf"), float("nan"), 1e5, 0.0, -1.0])
def test_an_alpha_that_would_give_inf_outputs_is_refused_naming_it(alpha):
    with pytest.raises(ValueError, match="alpha must be finite"):
        L1RAConfig(target_modules=["up"], alpha=alpha)
    with pytest.raises(ValueError, match="alpha must be finite"):
        from l1ra_core.torch import L1RALayer

        L1RALayer(torch.nn.Linear(4, 4), rank=2, initial_rank=2, alpha=alpha)


def test_the_largest_alpha_accepted_keeps_outputs_finite():
    from l1ra_core.config import MAX_ALPHA

    net = TinyNet()
    inject_adapters(net, L1RAConfig(target_modules=["up", "down"], initial_rank=1, alpha=MAX_ALPHA))
    with torch.no_grad():
        for layer in adapter_layers(net).values():
            layer.lora_B.fill_(0.01)
    assert torch.isfinite(net(torch.randn(4, 16))).all()


@pytest.mark.parametrize("pattern", ["blocks.(up", "*up", "[a-"])
def test_a_bad_target_modules_regex_is_a_clear_error_naming_the_pattern(pattern):
    with pytest.raises(ValueError, match=r"target_modules=.* is not a valid regular expression"):
        L1RAConfig(target_modules=pattern)
    from l1ra_core.torch.model import find_target_modules

    with pytest.raises(ValueError, match="not a valid regular expression"):
        find_target_modules(TinyNet(), pattern)


def test_the_gate_lr_comes_from_the_group_holding_the_gates_even_after_a_group_is_inserted_first():
    net = TinyNet()
    config = L1RAConfig(target_modules=["up", "down"], initial_rank=4, update_interval=1000, l1_lambda=1.0)
    inject_adapters(net, config)
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    L1RAController(net, config, optimizer)
    extra = torch.nn.Parameter(torch.zeros(3))
    optimizer.param_groups.insert(0, {**optimizer.defaults, "params": [extra], "lr": 0.5})
    optimizer.step()  # no gradients: only the proximal step acts, with the gates' group's lr 0.1
    gate = adapter_layers(net)["blocks.0.up"].gate.detach()
    torch.testing.assert_close(gate, torch.full((4,), 0.9))
