"""biasbench: bias benchmarks for language models that score sentences by log-likelihood.

- :mod:`biasbench.winobias`: WinoBias pro/anti-stereotyped sentence pairs (Zhao et al., 2018).
- :mod:`biasbench.crows`: CrowS-Pairs sentence pairs (Nangia et al., 2020).
- :mod:`biasbench.metrics`: preference shares and mean log-likelihood gaps with paired bootstrap intervals,
  "bias retained" relative to two reference models.
- :mod:`biasbench.power`: is a model measurably biased on a bias type? Exact sign tests per type against
  50 %, Holm-corrected, with exact intervals and the minimum detectable effect at each type's n.
- :mod:`biasbench.cda`: counterfactual data augmentation with the WinoBias gender swap lists.
- :mod:`biasbench.packaged`: the WinoBias and CrowS-Pairs files shipped inside the package.

Nothing here needs torch: metrics take log-likelihoods (NumPy arrays) from any scorer, for instance
:func:`sfbow_llm.loglik.sentence_log_likelihoods`. CrowS-Pairs and WinoBias test are for evaluation only:
never train or tune on them.
"""

from biasbench.cda import SwapList, augment, gendered_sentences, load_swap_list
from biasbench.crows import CrowsPair, load_crows_pairs
from biasbench.metrics import (
    BootstrapEstimate,
    PairMetrics,
    bias_retained,
    crows_metrics,
    mean_gap,
    pair_metrics,
    paired_bootstrap,
    paired_difference,
    preference_share,
    winobias_metrics,
)
from biasbench.packaged import crows_pairs_file, winobias_dir
from biasbench.power import TypeSelection, TypeTest, biased_types, holm, minimum_detectable_effect
from biasbench.winobias import WinoBiasPair, load_winobias_pairs, load_winobias_sentences

__all__ = [
    "BootstrapEstimate",
    "CrowsPair",
    "PairMetrics",
    "SwapList",
    "TypeSelection",
    "TypeTest",
    "WinoBiasPair",
    "augment",
    "bias_retained",
    "biased_types",
    "crows_metrics",
    "crows_pairs_file",
    "gendered_sentences",
    "holm",
    "load_crows_pairs",
    "load_swap_list",
    "load_winobias_pairs",
    "load_winobias_sentences",
    "mean_gap",
    "minimum_detectable_effect",
    "preference_share",
    "pair_metrics",
    "paired_bootstrap",
    "paired_difference",
    "winobias_dir",
    "winobias_metrics",
]
