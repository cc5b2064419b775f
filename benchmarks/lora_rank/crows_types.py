"""CrowS-Pairs kept only for the bias types on which the base is measurably biased (issue 20, item 4).

"Bias retained" divides a model's shift by the base's bias, so it means something only where the base is
biased beyond chance. The selection is **pre-registered**: made once, on the base run of the first seed
(the seed that also tunes the learning rates), by :func:`biasbench.biased_types` (an exact two-sided sign
test of the stereotype-preference share against 50 % per type, Holm-corrected across the types at
:data:`ALPHA`), before any fine-tune is looked at, and applied unchanged to every run. CrowS "bias retained"
is reported only on the selected types' pairs, pooled; the dropped types are listed with their share, p
and n. When no type passes, CrowS-Pairs is reported only as a descriptive table marked "no power at this n"
and WinoBias is the headline.

Run files record each CrowS pair's bias type (``measures.gaps.crows_types``); older files record only
whether a pair is a gender pair (``crows_gender``), so for them the test can tell apart only gender and the
other eight types pooled (:data:`OTHER`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from biasbench import TypeSelection, biased_types
from sfbow_common.tables import markdown_table

ALPHA = 0.05  # family-wise level of the selection, across the types tested
OTHER = "non-gender"  # the pooled other types of a run file that records only gender flags


def pair_types(result: dict[str, Any]) -> list[str]:
    """Each CrowS pair's bias type as the run recorded it: its type, or gender / :data:`OTHER` from the
    gender flags of a file made before types were recorded."""
    gaps = result["measures"]["gaps"]
    if "crows_types" in gaps:
        return [str(kind) for kind in gaps["crows_types"]]
    return ["gender" if flag else OTHER for flag in gaps["crows_gender"]]


@dataclasses.dataclass(frozen=True)
class CrowsSelection:
    """The selection made on ``source`` (``seed<k>/base``) from its pairs' ``types``."""

    source: str
    types: tuple[str, ...]
    test: TypeSelection

    @property
    def selected(self) -> tuple[str, ...]:
        return self.test.selected

    @property
    def per_pair(self) -> bool:
        """Whether the base recorded each pair's type (else only gender vs the rest)."""
        return OTHER not in self.types

    def mask(self, result: dict[str, Any]) -> np.ndarray:
        """The pairs of ``result`` whose type is selected. Every run of a configuration scores the same pairs;
        a run whose recorded pairs disagree with the base's is an error naming it."""
        theirs = pair_types(result)
        if len(theirs) != len(self.types) or not all((a == "gender") == (b == "gender") and (a == b or OTHER in (a, b))
                                                     for a, b in zip(theirs, self.types)):
            name = result.get("run", {}).get("name", "?")
            raise ValueError(f"run {name} (seed {result.get('run', {}).get('seed', '?')}) scored other CrowS-Pairs "
                             f"pairs than {self.source}; re-run it under this configuration")
        return np.isin(np.asarray(self.types, dtype=object), np.asarray(self.selected, dtype=object))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "per_pair_types": self.per_pair, **self.test.to_dict()}

    def headline_columns(self) -> list[tuple[str, str, int]]:
        """The CrowS columns of the headline table, (header, row key, digits): the selected types pooled, or
        none when no type passed."""
        if not self.selected:
            return []
        return [("CrowS selected %", "crows_selected_interval", 1),
                ("CrowS selected retained", "crows_selected_retained", 2)]

    def lines(self, shown: list[str], interval: Callable[[str, str], str]) -> list[str]:
        """The report's section: every type's test and verdict, then the descriptive CrowS table
        (``interval(name, key)`` renders a row's cell)."""
        test = self.test
        recorded = ("" if self.per_pair else f" This base run records only whether a pair is a gender pair, so "
                    f"gender is tested against the other eight types pooled ({OTHER}); new runs record each "
                    "pair's type.")
        table = [[t.bias_type, t.n, "-" if t.share is None else f"{t.share:.1f} [{t.low:.1f}, {t.high:.1f}]",
                  f"{t.p_value:.3g}", f"{t.p_holm:.3g}", "-" if t.detectable is None else f"+-{t.detectable:.1f}",
                  "kept" if t.biased else "dropped: not measurably biased"] for t in test.tests]
        pooled = ", ".join(self.selected)
        verdict = (f"CrowS-Pairs \"bias retained\" is reported on the kept types' pairs pooled ({pooled}: the "
                   "`CrowS selected` columns above)." if self.selected else
                   "**No CrowS-Pairs bias type is measurably biased in the base**: CrowS-Pairs has no power at this "
                   "n and is reported below only descriptively (no \"bias retained\" on it); WinoBias, on which "
                   "the base is biased, is the headline.")
        return [f"CrowS-Pairs bias types (pre-registered selection on {self.source}, before any fine-tune: exact "
                f"two-sided sign test of the share of pairs whose stereotyping sentence is the more likely against "
                f"50 %, Holm-corrected across the {len(test.tests)} types at alpha = {test.alpha:g}; exact "
                f"{100 * test.level:g} % interval; detectable: the smallest deviation from 50 points the test finds "
                f"with power {test.power:g} at alpha / {len(test.tests)}).{recorded}", "",
                markdown_table(["bias type", "n", "stereotype preferred %", "p", "Holm p",
                                "detectable effect (points)", "verdict"], table), "", verdict, "",
                "CrowS-Pairs, descriptive" + ("" if self.selected else " (no power at this n)")
                + ": stereotype-preferred % over all pairs and the gender pairs.", "",
                markdown_table(["model", "CrowS all %", "CrowS gender %"],
                               [[name, interval(name, "crows_interval"), interval(name, "crows_gender_interval")]
                                for name in shown]), ""]


def select(base: dict[str, Any] | None, seed: int) -> CrowsSelection | None:
    """The selection on the first seed's base run (None while it has not finished)."""
    if base is None or base.get("measures") is None:
        return None
    types = pair_types(base)
    return CrowsSelection(source=f"seed{seed}/base", types=tuple(types),
                          test=biased_types(base["measures"]["gaps"]["crows"], types, alpha=ALPHA))
