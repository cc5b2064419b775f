"""The L1RA reallocation step: prune weak components, hand the freed rank to the neediest adapters.

Every adapter carries a gate vector ``c`` (one gate per rank-one component ``B[:, j] c[j] A[j]``).
:func:`allocate` turns the gates of all adapters into an :class:`AllocationPlan` that keeps the
sum of ranks at a global budget. The plan is pure bookkeeping: which old components each adapter
keeps and how many fresh ones it appends. Applying it to real tensors is the backend's job.
"""

from __future__ import annotations

import numbers
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from shared_utils.checks import check_int, check_nonnegative

__all__ = ["AdapterPlan", "AllocationPlan", "allocate"]


@dataclass(frozen=True, eq=False, slots=True)
class AdapterPlan:
    """The new shape of one adapter: the old components it keeps, then ``n_new`` fresh ones.

    ``keep`` holds indices into the old gate vector (int64, ascending, read-only). The new
    components come after the kept ones and start with gate 1, a fresh random row of A and a
    zero column of B, so the adapter's output does not change at the moment of the resize.
    """

    name: str
    old_rank: int
    keep: np.ndarray
    n_new: int

    @property
    def rank(self) -> int:
        """Rank after the resize: ``len(keep) + n_new``."""
        return len(self.keep) + self.n_new

    @property
    def pruned(self) -> int:
        """Number of old components removed: ``old_rank - len(keep)``."""
        return self.old_rank - len(self.keep)

    @property
    def changed(self) -> bool:
        """Whether the resize touches this adapter at all."""
        return self.n_new > 0 or len(self.keep) != self.old_rank

    def resize(self, values: ArrayLike, *, fill: float = 0.0, axis: int = 0) -> np.ndarray:
        """Apply the plan to a NumPy array whose ``axis`` runs over the components.

        Returns ``values`` restricted to ``keep`` along ``axis``, followed by ``n_new`` slices
        filled with ``fill``. Use ``fill=1.0`` for gates, ``axis=1`` for B, ``fill=0.0`` for
        optimizer moments; new rows of A are zeros here and should be re-drawn at random.
        """
        values = np.asarray(values)
        if not -values.ndim <= axis < values.ndim or values.shape[axis] != self.old_rank:
            raise ValueError(
                f"adapter {self.name!r}: resize expects {self.old_rank} components along axis "
                f"{axis}, got an array of shape {values.shape}"
            )
        kept = np.take(values, self.keep, axis=axis)
        fresh_shape = list(kept.shape)
        fresh_shape[axis] = self.n_new
        return np.concatenate([kept, np.full(fresh_shape, fill, dtype=kept.dtype)], axis=axis)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AdapterPlan):
            return NotImplemented
        return (
            self.name == other.name
            and self.old_rank == other.old_rank
            and self.n_new == other.n_new
            and np.array_equal(self.keep, other.keep)
        )


@dataclass(frozen=True, repr=False)
class AllocationPlan:
    """The outcome of one reallocation round over all adapters.

    ``adapters`` is read-only and sorted by name. ``pruned`` counts components removed,
    ``freed`` is ``budget`` minus all kept components (the rank there was to hand out) and
    ``reassigned`` counts the fresh components handed out; ``total_rank`` equals ``budget``.
    """

    adapters: Mapping[str, AdapterPlan]
    budget: int
    pruned: int
    freed: int
    reassigned: int
    total_rank: int

    @property
    def ranks(self) -> dict[str, int]:
        """New rank of every adapter, by name."""
        return {name: adapter.rank for name, adapter in self.adapters.items()}

    @property
    def changed(self) -> bool:
        """Whether any adapter is resized."""
        return self.pruned > 0 or self.reassigned > 0

    def __repr__(self) -> str:
        return (
            f"AllocationPlan(adapters={len(self.adapters)}, budget={self.budget}, "
            f"pruned={self.pruned}, freed={self.freed}, reassigned={self.reassigned}, "
            f"total_rank={self.total_rank})"
        )


def allocate(
    gates: Mapping[str, ArrayLike],
    budget: int,
    *,
    threshold: float = 0.0,
    min_rank: int = 1,
    max_rank: int | Mapping[str, int] | None = None,
    exclude_pruned: bool = True,
) -> AllocationPlan:
    """Plan one L1RA reallocation: prune weak components and deal the freed rank.

    1. Prune every component with ``|gate| <= threshold``. An adapter never keeps fewer than
       ``min_rank`` components (it keeps its strongest, ties to the lower index) nor more than
       its ``max_rank``.
    2. If the kept components alone exceed ``budget``, also drop the globally weakest kept
       components (ties: the later adapter name, then the higher index, goes first), never
       taking an adapter below ``min_rank``.
    3. Adapters whose old rank is below ``min_rank`` grow to it.
    4. Deal the rest of the budget one rank at a time, round-robin, neediest first, skipping
       adapters at ``max_rank``. Need is the smallest surviving ``|gate|``, largest first (an
       adapter whose weakest component is still strong needs rank most); ties go by name.
       With ``exclude_pruned`` only adapters that pruned nothing take part; if they cannot
       absorb it all (none exist, or all reach ``max_rank``), the remainder is dealt the same
       way to every adapter with room, so the budget is always spent exactly.

    The result has ``total_rank == budget`` and does not depend on the order of ``gates``.

    Parameters
    ----------
    gates
        Adapter name -> 1-D gate vector (anything ``numpy.asarray`` accepts, CPU tensors too).
    budget
        The sum of all ranks after the plan; at least ``min_rank * len(gates)``.
    threshold
        Components with ``|gate| <= threshold`` are pruned; 0 prunes exact zeros only.
    min_rank
        Smallest rank any adapter may have (>= 1).
    max_rank
        Largest rank, for all adapters or per adapter (a mapping with exactly the keys of
        ``gates``); ``None`` means no limit.
    exclude_pruned
        Whether adapters that pruned something this round are passed over for new rank.
    """
    names, strength, lengths = _gather_gates(gates)
    n = len(names)
    budget = check_int(budget, "budget", minimum=0)
    threshold = check_nonnegative(threshold, "threshold")
    min_rank = check_int(min_rank, "min_rank", minimum=1)
    if budget < min_rank * n:
        raise ValueError(
            f"budget={budget} is below min_rank * number of adapters = {min_rank} * {n}; "
            "raise budget or lower min_rank"
        )
    caps = _rank_caps(max_rank, names, min_rank, budget)

    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    keep_mask, kept = _select_by_threshold(strength, starts, lengths, threshold, min_rank, caps)
    floor = np.maximum(kept, min_rank)
    excess = int(floor.sum()) - budget
    if excess > 0:
        kept = _drop_weakest(strength, keep_mask, kept, starts, lengths, min_rank, excess)
        floor = np.maximum(kept, min_rank)

    need = np.minimum.reduceat(np.where(keep_mask, strength, np.inf), starts)
    order = np.argsort(-need, kind="stable")  # names are sorted, so ties go by name
    room = (caps - floor)[order]
    eligible = (kept == lengths)[order] if exclude_pruned else np.ones(n, dtype=bool)
    spare = budget - int(floor.sum())
    first = _deal_round_robin(spare, np.where(eligible, room, 0))
    rest = _deal_round_robin(spare - int(first.sum()), room - first)
    n_new = floor - kept
    n_new[order] += first + rest

    keep_index = np.flatnonzero(keep_mask)
    keep_index -= np.repeat(starts, kept)  # flat position -> index within its adapter
    keep_index.flags.writeable = False
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(kept, out=bounds[1:])
    adapters = _AdapterTable(names, lengths.tolist(), keep_index, bounds.tolist(), n_new.tolist())
    total_kept, total_new = int(kept.sum()), int(n_new.sum())
    return AllocationPlan(
        adapters=types.MappingProxyType(adapters),
        budget=budget,
        pruned=int(lengths.sum()) - total_kept,
        freed=budget - total_kept,
        reassigned=total_new,
        total_rank=total_kept + total_new,
    )


class _AdapterTable(Mapping[str, AdapterPlan]):
    """The adapters of a plan held as flat arrays; each :class:`AdapterPlan` is built on lookup.

    Building 10,000 frozen dataclasses up front would cost more than the allocation itself;
    this way a plan costs only what its callers look at.
    """

    __slots__ = ("_position", "_names", "_old_ranks", "_keep_index", "_bounds", "_n_new")

    def __init__(
        self,
        names: list[str],
        old_ranks: list[int],
        keep_index: np.ndarray,
        bounds: list[int],
        n_new: list[int],
    ) -> None:
        self._position = dict(zip(names, range(len(names))))
        self._names = names
        self._old_ranks = old_ranks
        self._keep_index = keep_index  # read-only, so the slices handed out are too
        self._bounds = bounds
        self._n_new = n_new

    def __getitem__(self, name: str) -> AdapterPlan:
        i = self._position[name]
        keep = self._keep_index[self._bounds[i] : self._bounds[i + 1]]
        return AdapterPlan(name, self._old_ranks[i], keep, self._n_new[i])

    def __contains__(self, name: object) -> bool:
        return name in self._position

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _gather_gates(gates: Mapping[str, ArrayLike]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Validate ``gates``; return sorted names, all ``|gate|`` concatenated (floating), lengths."""
    if not isinstance(gates, Mapping):
        raise TypeError(
            f"gates must be a mapping of adapter name -> gate vector, got {type(gates).__name__}"
        )
    if not gates:
        raise ValueError("gates is empty; pass at least one adapter")
    for kind in set(map(type, gates)):
        if not issubclass(kind, str):
            raise TypeError(f"gates keys must be adapter names (str), got {kind.__name__}")
    names = sorted(gates)
    vectors = list(map(gates.__getitem__, names))
    try:
        flat = np.concatenate(vectors)
    except (ValueError, TypeError):  # mixed dimensions or dtypes; the loop below names the culprit
        flat = None
    if flat is None or flat.ndim != 1 or flat.dtype.kind not in "biuf":
        for name, vector in zip(names, vectors):
            array = np.asarray(vector)
            if array.ndim != 1 or array.dtype.kind not in "biuf":
                raise ValueError(
                    f"gates[{name!r}] must be a 1-D array of real numbers, got shape "
                    f"{array.shape} and dtype {array.dtype}"
                )
    lengths = np.fromiter(map(len, vectors), dtype=np.int64, count=len(vectors))
    if not lengths.all():
        empty = names[int(np.argmin(lengths))]
        raise ValueError(f"gates[{empty!r}] is empty; every adapter needs at least one component")
    strength = np.abs(flat, out=flat) if flat.dtype.kind == "f" else np.abs(flat, dtype=np.float64)
    if not np.isfinite(strength.max()):  # NaN and inf both propagate to the max
        first_bad = int(np.flatnonzero(~np.isfinite(strength))[0])
        adapter = int(np.searchsorted(np.cumsum(lengths), first_bad, side="right"))
        raise ValueError(
            f"gates[{names[adapter]!r}] contains NaN or inf; check the training run before "
            "reallocating"
        )
    return names, strength, lengths


def _rank_caps(
    max_rank: int | Mapping[str, int] | None, names: list[str], min_rank: int, budget: int
) -> np.ndarray:
    """Per-adapter rank ceiling (int64, sorted like ``names``, at most ``budget``)."""
    if max_rank is None:
        return np.full(len(names), budget, dtype=np.int64)
    per_adapter = isinstance(max_rank, Mapping)
    if per_adapter:
        if len(max_rank) != len(names) or not all(map(max_rank.__contains__, names)):
            missing = sorted(set(names) - set(max_rank))[:3]
            extra = sorted(set(max_rank) - set(names), key=repr)[:3]
            raise ValueError(f"max_rank keys must equal the gates keys; missing {missing}, unknown {extra}")
        values = [max_rank[name] for name in names]
    else:
        values = [max_rank]

    def label(i: int) -> str:
        return f"max_rank[{names[i]!r}]" if per_adapter else "max_rank"

    for kind in set(map(type, values)):  # one check per type; check_int names the bad value
        if issubclass(kind, (bool, np.bool_)) or not issubclass(kind, numbers.Integral):
            i = next(i for i, value in enumerate(values) if type(value) is kind)
            check_int(values[i], label(i), minimum=0)
    caps = np.minimum(np.array(values), budget).astype(np.int64)  # clip first: no int64 overflow
    if caps.min() < min_rank:
        i = int(np.argmin(caps))
        raise ValueError(f"{label(i)}={caps[i]} is below min_rank={min_rank}; raise it or lower min_rank")
    caps = np.broadcast_to(caps, (len(names),))
    if int(caps.sum()) < budget:
        raise ValueError(
            f"budget={budget} exceeds the total capacity {int(caps.sum())} that max_rank allows; "
            "raise max_rank or lower budget"
        )
    return caps


def _select_by_threshold(
    strength: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    threshold: float,
    min_rank: int,
    caps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mark the components each adapter keeps; return the flat mask and per-adapter counts.

    Normally that is every component above ``threshold``; adapters that would fall outside
    ``[min_rank, cap]`` keep their strongest ``min_rank`` or ``cap`` components instead.
    """
    keep_mask = strength > threshold
    above = np.add.reduceat(keep_mask, starts, dtype=np.int64)
    kept = np.minimum(np.clip(above, min_rank, caps), lengths)
    forced = np.flatnonzero(kept != above)
    if forced.size:
        index, position = _strength_positions(strength, starts, lengths, forced)
        keep_mask[index] = position < np.repeat(kept[forced], lengths[forced])
    return keep_mask, kept


def _drop_weakest(
    strength: np.ndarray,
    keep_mask: np.ndarray,
    kept: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    min_rank: int,
    excess: int,
) -> np.ndarray:
    """Unmark, in ``keep_mask``, the ``excess`` globally weakest kept components beyond each
    adapter's ``min_rank``; return the new per-adapter counts.

    Ties at the cut drop the later components (by adapter name, then index) first. A partition
    finds the cut in linear time; no global sort is needed.
    """
    index, position = _strength_positions(strength, starts, lengths, np.flatnonzero(kept > min_rank))
    droppable = index[keep_mask[index] & (position >= min_rank)]  # ascending flat positions
    values = strength[droppable]
    cut = np.partition(values, excess - 1)[excess - 1]
    below = values < cut
    at_cut = np.flatnonzero(values == cut)
    dropped = np.concatenate([droppable[below], droppable[at_cut[len(at_cut) - (excess - below.sum()) :]]])
    keep_mask[dropped] = False
    owner = np.searchsorted(starts, dropped, side="right") - 1
    return kept - np.bincount(owner, minlength=len(kept))


def _strength_positions(
    strength: np.ndarray, starts: np.ndarray, lengths: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the components of adapters ``rows`` (ascending) and each one's position in
    its adapter when sorted strongest first (ties: lower index first).

    The adapters are laid out as the rows of a matrix padded to the longest one, so one
    row-wise sort ranks them all.
    """
    sizes = lengths[rows]
    columns = np.arange(sizes.max(initial=0))
    inside = columns < sizes[:, None]
    index = (starts[rows, None] + columns)[inside]
    padded = np.full(inside.shape, -1.0)  # below every |gate|, so padding sorts last
    padded[inside] = strength[index]
    order = np.argsort(-padded, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.broadcast_to(columns, order.shape), axis=1)
    return index, position[inside]


def _deal_round_robin(amount: int, room: np.ndarray) -> np.ndarray:
    """Deal ``amount`` units one at a time over ``room`` in order, skipping full slots.

    Computed arithmetically: after ``t`` full rounds slot ``j`` holds ``min(t, room[j])``. Take
    the largest ``t`` whose total fits in ``amount``; the remainder (fewer than the slots still
    open) goes one each to the first open slots. Stops early if every slot is full.
    """
    low, high = 0, amount
    while low < high:  # largest t with sum(min(t, room)) <= amount
        mid = (low + high + 1) // 2
        if int(np.minimum(room, mid).sum()) <= amount:
            low = mid
        else:
            high = mid - 1
    given = np.minimum(room, low)
    remainder = amount - int(given.sum())
    given[np.flatnonzero(room > low)[:remainder]] += 1
    return given
