"""Vectorized INVERT beam search: the best-separating formula of concepts for many neurons at once.

Each neuron is ranked once. For a beam formula with mask ``m``, the rank sum, size and hash of
``m & c`` for every concept ``c`` is one product of the label matrix with ``ranks * m``, ``m`` and
``weights * m``; ``m & ~c``, ``m | c`` and ``m | ~c`` follow from those and the concepts' totals, so
a whole level for all neurons and beam entries is one matrix product on the activations' device.
The labels stay boolean: the product converts one block of samples at a time to float64.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from captum_netinv._progress import progress_bar
from captum_netinv._utils import check_positive_int
from captum_netinv.recognition.ranking import ALTERNATIVES, auc_from_rank_sums, doubled_row_ranks

__all__ = ["BeamSearchResult", "SearchSettings", "beam_search"]

_MODES: tuple[str, ...] = ("positive", "negative")
#: Kinds of extension of a beam formula by a literal, in the order candidates are enumerated.
_AND_CONCEPT, _AND_NOT_CONCEPT, _OR_CONCEPT, _OR_NOT_CONCEPT = range(4)
#: Memory the candidates of one chunk of neurons may take; chunks bound the peak for wide layers.
_CHUNK_BYTES = 256 * 2**20
#: Memory of the float64 copy of one block of samples' labels in :func:`_label_products`.
_LABEL_BLOCK_BYTES = 16 * 2**20
#: Most bits of a sample's random hash weight.
_HASH_BITS = 32
#: Bits the sum of all samples' hash weights may take: float64 holds whole numbers below
#: ``2**53`` exactly.
_EXACT_SUM_BITS = 52
#: The statistics of each beam mask one label product gives: size, hash and rank sum.
_MASK_STATISTICS = 3


@dataclass(frozen=True)
class SearchSettings:
    r"""
    The settings of the beam search, validated on creation. Their defaults are written here only:
    :func:`~captum_netinv.explain_activations` and :meth:`InverseRecognition.attribute
    <captum_netinv.InverseRecognition.attribute>` take theirs from this class.

    Args:
        formula_length (int, optional): Longest formula, in literals. Default: 3
        beam_size (int, optional): Formulas kept per level. Default: 5
        min_fraction (float, optional): Smallest admissible fraction of the samples a formula
                    may hold. Default: 0.0
        max_fraction (float, optional): Largest admissible fraction. Default: 0.5
        mode (str, optional): ``"positive"`` seeks the highest AUC, ``"negative"`` the lowest.
                    Default: ``"positive"``
        alternative (str, optional): The p-value's test, ``"two-sided"``, ``"greater"`` or
                    ``"less"``; None becomes the one-sided test in the mode's direction
                    (``"greater"`` for ``"positive"``, ``"less"`` for ``"negative"``), or
                    ``"two-sided"`` (the official default) with ``reference_compatible``.
                    Default: None
        reference_compatible (bool, optional): Run the official implementation's search
                    instead of ours (:func:`~captum_netinv.recognition.reference.reference_search`;
                    see :doc:`/methods/invert` for the differences). Default: False
    """

    formula_length: int = 3
    beam_size: int = 5
    min_fraction: float = 0.0
    max_fraction: float = 0.5
    mode: str = "positive"
    alternative: str | None = None
    reference_compatible: bool = False

    def __post_init__(self) -> None:
        check_positive_int(self.formula_length, "formula_length")
        if not isinstance(self.reference_compatible, bool):
            raise TypeError(
                f"`reference_compatible` must be a bool, got {self.reference_compatible!r}"
            )
        check_positive_int(self.beam_size, "beam_size")
        for name in ("min_fraction", "max_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"`{name}` must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value}")
            object.__setattr__(self, name, float(value))
        if self.min_fraction > self.max_fraction:
            raise ValueError(
                f"`min_fraction` ({self.min_fraction}) must not exceed `max_fraction` "
                f"({self.max_fraction})"
            )
        if self.mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {self.mode!r}")
        if self.alternative is None:
            one_sided = "greater" if self.mode == "positive" else "less"
            resolved = "two-sided" if self.reference_compatible else one_sided
            object.__setattr__(self, "alternative", resolved)
        if self.alternative not in ALTERNATIVES:
            raise ValueError(
                f"`alternative` must be None or one of {ALTERNATIVES}, got {self.alternative!r}"
            )

    @property
    def sign(self) -> float:
        r"""+1 when high AUCs are sought, -1 when low ones are."""
        return 1.0 if self.mode == "positive" else -1.0

    def to_dict(self) -> dict[str, Any]:
        r"""The settings by name, ``alternative`` resolved (as ``Explanations.settings``)."""
        return asdict(self)

    def for_concepts(self, concepts: int) -> SearchSettings:
        r"""
        These settings with ``formula_length`` at most ``2 * concepts``, the number of distinct
        literals (a longer formula must repeat one), with a warning when it is reduced.
        """
        longest = max(1, 2 * concepts)
        if self.formula_length <= longest:
            return self
        warnings.warn(
            f"`formula_length` {self.formula_length} is more than the {longest} distinct "
            f"literals of {concepts} concepts: searching formulas of up to {longest} literals",
            stacklevel=3,
        )
        return replace(self, formula_length=longest)


@dataclass(frozen=True)
class BeamSearchResult:
    r"""
    Final beams of :func:`beam_search`, best first, on the CPU (``K`` neurons, ``B`` slots).

    - **steps**: ``(K, B, L)`` int64 formula steps: ``operator * 2C + literal`` with ``operator``
      0 for AND and 1 for OR (ignored on the first step) and ``literal`` ``c`` for concept ``c`` or
      ``C + c`` for its negation; -1 past the formula's length. Formulas nest to the left.
    - **lengths**, **valid**: ``(K, B)`` formula lengths and which slots hold a formula.
    - **auc**, **counts**, **rank_sums**: ``(K, B)`` float64 AUCs, mask sizes and doubled rank
      sums (sums of twice the mid-ranks: whole numbers).
    - **tie_terms**: ``(K,)`` ``sum(t**3 - t)`` over groups of tied activations.
    - **level_steps**, **level_valid**, **level_auc**, **level_counts**: ``(K, V, V)``,
      ``(K, V)``: the best formula of the beam after each level ``1..V``, i.e. the best formula
      of at most ``l`` literals the search reached (the official ``memorize_states``). ``V`` is
      the number of levels run: the search stops before ``formula_length`` once the beam of
      every neuron stays as it was (no candidate can enter it, so no later level changes it).
    """

    steps: Tensor
    lengths: Tensor
    valid: Tensor
    auc: Tensor
    counts: Tensor
    rank_sums: Tensor
    tie_terms: Tensor
    level_steps: Tensor
    level_valid: Tensor
    level_auc: Tensor
    level_counts: Tensor


@dataclass
class _Beam:
    """The beam of a chunk of ``k`` neurons: ``(k, B, ...)`` tensors on the search device."""

    masks: Tensor
    counts: Tensor
    rank_sums: Tensor
    hashes: Tensor
    lengths: Tensor
    steps: Tensor
    valid: Tensor
    auc: Tensor


@dataclass
class _Candidates:
    """Statistics of ``(k, M)`` candidate masks, in the order they are found."""

    counts: Tensor
    rank_sums: Tensor
    hashes: Tensor
    lengths: Tensor
    enabled: Tensor


@dataclass(frozen=True)
class _Labels:
    """The boolean ``(N, C)`` labels, the samples' hash weights and the per-concept totals (sizes
    and hashes); ``by_concept`` is a ``(C, N)`` view, not a copy."""

    by_sample: Tensor
    by_concept: Tensor
    weights: Tensor
    counts: Tensor
    hashes: Tensor


def beam_search(
    activations: Tensor,
    labels: Tensor,
    settings: SearchSettings,
    progress: bool = False,
    neurons_per_chunk: int | None = None,
) -> BeamSearchResult:
    r"""
    Runs the INVERT beam search for every column of ``activations``, on their device.

    Level 1 scores all ``2C`` literals and keeps the best ``beam_size`` admissible ones; each
    further level extends every beam formula with every literal by AND and by OR, and the new
    beam is the best ``beam_size`` admissible formulas among the old beam and the new candidates.
    The search stops early once no neuron's beam changes; ``formula_length`` is capped at ``2C``
    (:meth:`SearchSettings.for_concepts`).
    Admissible: support fraction in ``[min_fraction, max_fraction]`` and strictly between 0 and
    1. Candidates with identical masks are one candidate: the shorter, then the first found,
    stays. Masks are compared by size, rank sum and a 32-bit random hash of the samples they
    contain, all exact integers in ``float64``, so two different masks are merged only if all
    three collide. Equal scores are ordered shorter first, then first found.

    Args:
        activations (Tensor): ``(N, K)`` finite activations.
        labels (Tensor): ``(N, C)`` boolean concept labels on the same device.
        settings (SearchSettings): The search settings.
        progress (bool, optional): Show a progress bar over chunks of neurons.
        neurons_per_chunk (int, optional): Neurons searched together. Default: as many as fit
                    in about 256 MiB of candidates.

    Returns:
        :class:`BeamSearchResult`.
    """
    count, concepts = labels.shape
    if count * (count + 1) >= 2**53:
        raise ValueError(f"at most 9e7 samples are supported, got {count}")
    settings = settings.for_concepts(concepts)
    label_forms = _prepare_labels(labels)
    width = activations.shape[1]
    chunk = neurons_per_chunk or _neurons_per_chunk(count, concepts, settings.beam_size)
    starts = range(0, width, chunk)
    parts = [
        _search_chunk(activations[:, start : start + chunk], label_forms, settings)
        for start in progress_bar(starts, desc="INVERT beam search", enabled=progress)
    ]
    return _concatenated(parts)


def _concatenated(parts: list[BeamSearchResult]) -> BeamSearchResult:
    """The results of consecutive chunks of neurons as one, over the levels the longest ran."""
    levels = max(part.level_auc.shape[1] for part in parts)

    def whole(name: str) -> Tensor:
        pieces = [getattr(part, name) for part in parts]
        if not name.startswith("level_"):
            return torch.cat(pieces, dim=0)
        # a chunk that stopped early keeps its last beam at every later level
        joined = torch.cat([_repeat_last(piece, levels) for piece in pieces], dim=0)
        # after level l a formula has at most l literals
        return joined[..., :levels] if name == "level_steps" else joined

    return BeamSearchResult(**{field.name: whole(field.name) for field in fields(BeamSearchResult)})


def _repeat_last(record: Tensor, levels: int) -> Tensor:
    """A ``(k, v, ...)`` per-level record extended to ``levels`` by repeating its last level."""
    missing = levels - record.shape[1]
    return torch.cat([record, record[:, -1:].expand(-1, missing, *record.shape[2:])], dim=1)


def _prepare_labels(labels: Tensor) -> _Labels:
    weights = _hash_weights(labels.shape[0], labels.device)
    by_sample = labels.to(torch.bool).contiguous()
    return _Labels(
        by_sample=by_sample,
        by_concept=by_sample.t(),
        weights=weights,
        counts=by_sample.sum(dim=0).to(torch.float64),
        hashes=_label_products(weights.unsqueeze(0), by_sample).squeeze(0),
    )


def _label_products(left: Tensor, labels: Tensor) -> Tensor:
    r"""
    ``left @ labels`` in float64 for ``(R, N)`` float64 ``left`` and ``(N, C)`` boolean
    ``labels``, summed over blocks of samples so that only one block of labels is ever held in
    float64 (each label is converted once). Exact for the search's whole-number masks, ranks
    and hashes, whose sums stay below ``2**53`` in any order.
    """
    count, concepts = labels.shape
    out = torch.zeros(left.shape[0], concepts, dtype=torch.float64, device=left.device)
    rows = min(count, max(1, _LABEL_BLOCK_BYTES // (8 * max(1, concepts))))
    # one buffer for every block: a fresh allocation per block costs more than the conversion
    buffer = torch.empty(rows, concepts, dtype=torch.float64, device=left.device)
    for start in range(0, count, rows):
        block = buffer[: min(rows, count - start)]
        block.copy_(labels[start : start + rows])
        out.addmm_(left[:, start : start + rows], block)
    return out


def _hash_weights(count: int, device: torch.device) -> Tensor:
    """Random whole numbers per sample whose sums over any mask stay exact in float64."""
    bits = min(_HASH_BITS, _EXACT_SUM_BITS - count.bit_length())
    generator = torch.Generator().manual_seed(0)
    weights = torch.randint(1, 2**bits, (count,), generator=generator, dtype=torch.int64)
    return weights.to(device=device, dtype=torch.float64)


def _neurons_per_chunk(count: int, concepts: int, beam_size: int) -> int:
    candidates = beam_size * (4 * concepts + 1)
    # three float64 product columns and two masks per beam entry, ~16 float64 arrays per candidate
    per_neuron = beam_size * count * (3 * 8 + 2) + candidates * 8 * 16
    return max(1, _CHUNK_BYTES // per_neuron)


def _search_chunk(
    activations: Tensor, labels: _Labels, settings: SearchSettings
) -> BeamSearchResult:
    """The search for the columns of ``activations``, results on the CPU."""
    # neurons x samples, so that each neuron's values are contiguous
    doubled_ranks, tie_terms = doubled_row_ranks(activations.t().contiguous())
    concept_ranks = _label_products(doubled_ranks, labels.by_sample)
    beam = _first_level(doubled_ranks, concept_ranks, labels, settings)
    bests = [beam]
    for _ in range(2, settings.formula_length + 1):
        beam, changed = _next_level(beam, doubled_ranks, concept_ranks, labels, settings)
        if not changed:  # the same beam gives the same next level: nothing can change any more
            break
        bests.append(beam)
    return BeamSearchResult(
        steps=beam.steps.cpu(),
        lengths=beam.lengths.cpu(),
        valid=beam.valid.cpu(),
        auc=beam.auc.cpu(),
        counts=beam.counts.cpu(),
        rank_sums=beam.rank_sums.cpu(),
        tie_terms=tie_terms.cpu(),
        level_steps=torch.stack([level.steps[:, 0] for level in bests], dim=1).cpu(),
        level_valid=torch.stack([level.valid[:, 0] for level in bests], dim=1).cpu(),
        level_auc=torch.stack([level.auc[:, 0] for level in bests], dim=1).cpu(),
        level_counts=torch.stack([level.counts[:, 0] for level in bests], dim=1).cpu(),
    )


def _first_level(
    doubled_ranks: Tensor, concept_ranks: Tensor, labels: _Labels, settings: SearchSettings
) -> _Beam:
    neurons, count = doubled_ranks.shape
    concepts = labels.counts.shape[0]
    total_rank = float(count * (count + 1))
    total_hash = labels.weights.sum()
    literal_counts = torch.cat([labels.counts, count - labels.counts]).expand(neurons, -1)
    literal_hashes = torch.cat([labels.hashes, total_hash - labels.hashes]).expand(neurons, -1)
    candidates = _Candidates(
        counts=literal_counts,
        rank_sums=torch.cat([concept_ranks, total_rank - concept_ranks], dim=1),
        hashes=literal_hashes,
        lengths=torch.ones_like(literal_counts, dtype=torch.int64),
        enabled=torch.ones_like(literal_counts, dtype=torch.bool),
    )
    chosen, valid, auc = _select(candidates, count, settings)
    literal = chosen
    masks = labels.by_concept[literal % concepts] ^ (literal >= concepts).unsqueeze(-1)
    steps = torch.full(
        (*chosen.shape, settings.formula_length), -1, dtype=torch.int64, device=chosen.device
    )
    steps[..., 0] = literal
    return _Beam(
        masks=masks,
        counts=candidates.counts.gather(1, chosen),
        rank_sums=candidates.rank_sums.gather(1, chosen),
        hashes=candidates.hashes.gather(1, chosen),
        lengths=torch.ones_like(chosen),
        steps=steps,
        valid=valid,
        auc=auc,
    )


def _next_level(
    beam: _Beam,
    doubled_ranks: Tensor,
    concept_ranks: Tensor,
    labels: _Labels,
    settings: SearchSettings,
) -> tuple[_Beam, bool]:
    """The next level's beam, and whether it differs from ``beam`` for any neuron."""
    neurons, count = doubled_ranks.shape
    concepts = labels.counts.shape[0]
    width = beam.masks.shape[1]
    # size, hash and rank sum of (beam mask AND concept), for every neuron, beam entry and
    # concept: one product of the labels with [masks; weights * masks; ranks * masks]
    left = torch.empty(
        _MASK_STATISTICS, neurons, width, count, dtype=torch.float64, device=beam.masks.device
    )
    left[0].copy_(beam.masks)
    torch.mul(left[0], labels.weights, out=left[1])
    torch.mul(left[0], doubled_ranks.unsqueeze(1), out=left[2])
    products = _label_products(left.view(-1, count), labels.by_sample)
    del left
    both_counts, both_hashes, both_ranks = products.view(
        _MASK_STATISTICS, neurons, width, concepts
    ).unbind(0)
    candidate_counts = _extensions(beam.counts, labels.counts, both_counts, float(count)).reshape(
        neurons, -1
    )
    candidate_ranks = _extensions(
        beam.rank_sums, concept_ranks.unsqueeze(1), both_ranks, float(count * (count + 1))
    ).reshape(neurons, -1)
    candidate_hashes = _extensions(
        beam.hashes, labels.hashes, both_hashes, labels.weights.sum()
    ).reshape(neurons, -1)
    extended = 4 * concepts
    candidates = _Candidates(
        counts=torch.cat([beam.counts, candidate_counts], dim=1),
        rank_sums=torch.cat([beam.rank_sums, candidate_ranks], dim=1),
        hashes=torch.cat([beam.hashes, candidate_hashes], dim=1),
        lengths=torch.cat(
            [beam.lengths, (beam.lengths + 1).repeat_interleave(extended, dim=1)], dim=1
        ),
        enabled=torch.cat([beam.valid, beam.valid.repeat_interleave(extended, dim=1)], dim=1),
    )
    chosen, valid, auc = _select(candidates, count, settings)

    from_beam = chosen < width
    # a beam keeps its valid slots in order only if they all come from it (same sort rule)
    changed = not bool((~valid | from_beam).all())
    offset = (chosen - width).clamp_min(0)
    parent = torch.where(from_beam, chosen, offset // extended)
    kind = (offset // concepts) % 4
    concept = offset % concepts
    negated = (kind == _AND_NOT_CONCEPT) | (kind == _OR_NOT_CONCEPT)
    joined_by_or = kind >= _OR_CONCEPT

    parent_masks = beam.masks.gather(1, parent.unsqueeze(-1).expand(-1, -1, count))
    literal_masks = labels.by_concept[concept] ^ negated.unsqueeze(-1)
    new_masks = torch.where(
        joined_by_or.unsqueeze(-1), parent_masks | literal_masks, parent_masks & literal_masks
    )
    parent_lengths = beam.lengths.gather(1, parent)
    steps = beam.steps.gather(1, parent.unsqueeze(-1).expand(-1, -1, beam.steps.shape[2]))
    position = parent_lengths.clamp_max(settings.formula_length - 1).unsqueeze(-1)
    literal_code = concept + concepts * negated.long()
    new_step = joined_by_or.long() * 2 * concepts + literal_code
    kept_step = steps.gather(2, position).squeeze(-1)
    steps = steps.scatter(2, position, torch.where(from_beam, kept_step, new_step).unsqueeze(-1))
    new_beam = _Beam(
        masks=torch.where(from_beam.unsqueeze(-1), parent_masks, new_masks),
        counts=candidates.counts.gather(1, chosen),
        rank_sums=candidates.rank_sums.gather(1, chosen),
        hashes=candidates.hashes.gather(1, chosen),
        lengths=torch.where(from_beam, parent_lengths, parent_lengths + 1),
        steps=steps,
        valid=valid,
        auc=auc,
    )
    return new_beam, changed


def _extensions(
    beam_value: Tensor, concept_value: Tensor, both_value: Tensor, total: float | Tensor
) -> Tensor:
    r"""
    An additive statistic (size, rank sum, hash) of ``m & c``, ``m & ~c``, ``m | c``, ``m | ~c``
    from its value on ``m`` (``(k, B)``), on ``c`` and on ``m & c`` (``(k, B, C)``):
    ``(k, B, 4, C)`` in the order of ``_AND_CONCEPT`` ... ``_OR_NOT_CONCEPT``.
    """
    beam_value = beam_value.unsqueeze(-1)
    concept_value = concept_value.expand_as(both_value)
    return torch.stack(
        [
            both_value,
            beam_value - both_value,
            beam_value + concept_value - both_value,
            # m | ~c is everything except (c & ~m)
            total - (concept_value - both_value),
        ],
        dim=2,
    )


def _select(
    candidates: _Candidates, count: int, settings: SearchSettings
) -> tuple[Tensor, Tensor, Tensor]:
    """Indices of the best ``beam_size`` admissible distinct candidates per neuron, their
    validity and AUCs; best first, equal scores ordered by length and then by discovery."""
    sizes = candidates.counts
    auc = auc_from_rank_sums(candidates.rank_sums / 2.0, sizes, count)
    fraction = sizes / count
    admissible = (
        candidates.enabled
        & (sizes > 0)
        & (sizes < count)
        & (fraction >= settings.min_fraction)
        & (fraction <= settings.max_fraction)
    )
    score = torch.where(admissible, settings.sign * auc, -torch.inf)

    by_length = torch.sort(candidates.lengths, dim=1, stable=True).indices
    # a disabled candidate (extension of an empty beam slot) gets a hash of its own, below every
    # mask's, so that it never stands for an enabled one with the same mask
    own_hash = -1.0 - torch.arange(sizes.shape[1], dtype=sizes.dtype, device=sizes.device)
    hashes = torch.where(candidates.enabled, candidates.hashes, own_hash)
    # identical masks share a hash: sorting by it makes them adjacent, the shortest and then the
    # first found of each group first
    order = by_length.gather(1, torch.sort(hashes.gather(1, by_length), dim=1, stable=True).indices)
    repeats = torch.ones_like(order, dtype=torch.bool)
    for key in (hashes, candidates.rank_sums, candidates.counts):
        ordered = key.gather(1, order)
        repeats[:, 1:] &= ordered[:, 1:] == ordered[:, :-1]
    repeats[:, 0] = False
    duplicate = torch.zeros_like(repeats).scatter_(1, order, repeats)
    score = score.masked_fill(duplicate, -torch.inf)

    ranked_scores, ranking = torch.sort(
        score.gather(1, by_length), dim=1, descending=True, stable=True
    )
    beam_size = min(settings.beam_size, score.shape[1])
    chosen = by_length.gather(1, ranking[:, :beam_size])
    valid = ranked_scores[:, :beam_size] > -torch.inf
    return chosen, valid, auc.gather(1, chosen)
