"""The real model: all-MiniLM-L6-v2 with L1RA adapters, trained on real STS-B pairs; PEFT export,
save / load, and the HF Trainer callback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.sts_training import sts_loss
from l1ra_core import L1RAConfig
from l1ra_core.torch import (
    L1RAController,
    adapter_layers,
    adapter_parameter_groups,
    export_peft,
    inject_adapters,
    load_adapters,
    rank_pattern,
    save_adapters,
)

TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
SENTENCES = ["A man is playing a guitar.", "Two dogs run across a snowy field.", "The stock market fell sharply."]


def _perturbed_with_mixed_ranks(model, device, initial_rank=4):
    """MiniLM with adapters whose factors and gates are random and whose ranks differ after one real
    reallocation, as after training."""
    model.to(device)
    config = L1RAConfig(target_modules=TARGETS, initial_rank=initial_rank, alpha=8.0, update_interval=1000, init_seed=0)
    inject_adapters(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, layer in enumerate(adapter_layers(model).values()):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.05)
            layer.gate.copy_(torch.rand(layer.rank, generator=generator))
            if i % 3 == 0:
                layer.gate[: 1 + i % initial_rank] = 0.0
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    controller = L1RAController(model, config, optimizer)
    controller.reallocate()
    assert len(set(rank_pattern(model).values())) > 1
    return config, controller


def _embed(model, tokenizer, device):
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt").to(device)
    with torch.no_grad():
        return model(**batch).last_hidden_state


def test_peft_export_loads_in_peft_with_identical_outputs(minilm, minilm_path, minilm_tokenizer, device, tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoModel

    config, _ = _perturbed_with_mixed_ranks(minilm, device)
    ours = _embed(minilm, minilm_tokenizer, device)
    export_peft(minilm, config, tmp_path, base_model_name_or_path=str(minilm_path))
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and len(saved["rank_pattern"]) == len(adapter_layers(minilm))

    base = AutoModel.from_pretrained(minilm_path).to(device).eval()
    loaded = peft.PeftModel.from_pretrained(base, tmp_path).eval()
    for name, rank in rank_pattern(minilm).items():
        assert loaded.base_model.model.get_submodule(name).lora_A["default"].weight.shape[0] == rank
    torch.testing.assert_close(_embed(loaded, minilm_tokenizer, device), ours, rtol=1e-4, atol=1e-5)
    with loaded.disable_adapter():
        assert not torch.allclose(_embed(loaded, minilm_tokenizer, device), ours, atol=1e-3), "adapters matter"


def test_save_and_load_into_fresh_minilm(minilm, minilm_path, minilm_tokenizer, tmp_path):
    from transformers import AutoModel

    config, _ = _perturbed_with_mixed_ranks(minilm, "cpu")
    save_adapters(minilm, config, tmp_path)
    fresh = AutoModel.from_pretrained(minilm_path).eval()
    plain = _embed(fresh, minilm_tokenizer, "cpu")
    assert load_adapters(fresh, tmp_path) == config
    assert rank_pattern(fresh) == rank_pattern(minilm)
    loaded = _embed(fresh, minilm_tokenizer, "cpu")
    torch.testing.assert_close(loaded, _embed(minilm, minilm_tokenizer, "cpu"), rtol=0, atol=0)
    assert not torch.allclose(loaded, plain), "the adapters change the model"


def test_export_without_adapters_says_what_to_do(minilm, tmp_path):
    with pytest.raises(ValueError, match="no L1RA adapters.*inject_adapters"):
        export_peft(minilm, L1RAConfig(target_modules=TARGETS), tmp_path)


@pytest.mark.slow
def test_training_on_sts_lowers_the_loss_and_reallocates_within_budget(minilm, minilm_tokenizer, sts_train, device):
    left, right, scores = sts_train
    minilm.to(device).train()
    config = L1RAConfig(target_modules=TARGETS, initial_rank=4, alpha=8.0, update_interval=4, l1_lambda=1.0, init_seed=0)
    inject_adapters(minilm, config)
    # A fast gate learning rate, so that unhelpful gates reach zero within a few steps.
    optimizer = torch.optim.AdamW(adapter_parameter_groups(minilm, lr=2e-3, gate_lr=0.2))
    controller = L1RAController(minilm, config, optimizer)
    max_length, batch = 24, 16

    def full_loss() -> float:
        with torch.no_grad():
            return float(sts_loss(minilm, minilm_tokenizer, left, right, scores, max_length))

    before = full_loss()
    for step in range(12):
        i = (step * batch) % len(left)
        sl = slice(i, i + batch)
        sts_loss(minilm, minilm_tokenizer, left[sl], right[sl], scores[sl], max_length).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = full_loss()

    assert after < before, (before, after)
    assert controller.step_count == 12 and len(controller.rank_log) >= 3  # step 0, 4, 8 (and 12)
    assert any(plan_ranks != controller.rank_log[0] for plan_ranks in controller.rank_log.values()), \
        "some reallocation moved rank"
    assert sum(controller.ranks.values()) == controller.budget == 4 * 36
    gates = torch.cat([layer.gate.detach().cpu() for layer in adapter_layers(minilm).values()])
    assert float(gates.min()) >= 0 and float(gates.max()) <= 1


@pytest.mark.slow
def test_hf_trainer_callback_drives_the_controller(tiny_net, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from l1ra_core.torch.hf import L1RATrainerCallback

    class WithLoss(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.net(x), labels)}

    config = L1RAConfig(target_modules=["up", "down"], initial_rank=4, update_fraction=0.5, gate_lr=0.2, l1_lambda=1.0)
    inject_adapters(tiny_net, config)
    controller = L1RAController(tiny_net, config)  # the Trainer creates the optimizer later
    rng = np.random.default_rng(0)
    data = [{"x": torch.tensor(rng.normal(size=16), dtype=torch.float32),
             "labels": torch.tensor(rng.normal(size=3), dtype=torch.float32)} for _ in range(32)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8,
                                          use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no")
    trainer = transformers.Trainer(model=WithLoss(tiny_net), args=args, train_dataset=data,
                                   callbacks=[L1RATrainerCallback(controller)])
    trainer.train()
    assert controller.total_steps == 6 and controller.step_count == 6
    assert 3 in controller.rank_log and sum(controller.ranks.values()) == controller.budget
    assert controller.optimizer is None, "detached at the end of training"
