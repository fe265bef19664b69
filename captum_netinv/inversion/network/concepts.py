"""Generated samples of a class as Captum concepts, so that inversions feed TCAV.

:func:`class_concept` wraps a draw of one class in a :class:`captum.concept.Concept` whose id
is a hash of the draw, far above the small ids users give their own concepts.
"""

from __future__ import annotations

import hashlib
import secrets

import torch
from captum.concept import Concept
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from captum_netinv._utils import check_positive_int
from captum_netinv.inversion.checkpoint import weights_hash

__all__ = ["CONCEPT_ID_BASE", "class_concept", "concept_id_of", "samples_as_concept"]

#: Ids of concepts drawn by ``as_concept`` lie in ``[CONCEPT_ID_BASE, 2 * CONCEPT_ID_BASE)``,
#: far above the small ids users give their own concepts, and below 2**24: TCAV's classifier
#: stores the ids as float32 class labels, which hold integers exactly only up to there.
CONCEPT_ID_BASE = 2**23


def class_concept(
    samples: Tensor,
    *,
    generator: nn.Module,
    target: int,
    seed: int | None,
    batch_size: int,
    concept_id: int | None = None,
    name: str | None = None,
) -> Concept:
    r"""
    The draw ``samples`` of class ``target`` (drawn with ``seed`` from ``generator``) as a
    concept: ``concept_id`` defaults to :func:`concept_id_of` the draw, ``name`` to
    ``"inverted_class_{target}_seed_{seed}"`` (``_random`` without a seed).
    """
    if concept_id is None:
        concept_id = concept_id_of(generator, target, len(samples), seed)
    draw = "random" if seed is None else f"seed_{seed}"
    return samples_as_concept(
        samples.detach(),
        concept_id=int(concept_id),
        name=name or f"inverted_class_{target}_{draw}",
        batch_size=batch_size,
    )


def concept_id_of(generator: nn.Module, target: int, n_samples: int, seed: int | None) -> int:
    r"""
    The concept id of a draw: a hash of the generator's weights, the class, the count and the
    seed (a fresh random id when ``seed`` is None), in ``[CONCEPT_ID_BASE, 2 * CONCEPT_ID_BASE)``:
    the same draw keeps its id (TCAV may reuse its saved CAVs), any other draw gets another.
    """
    draw = f"{weights_hash([generator])}/{target}/{n_samples}/"
    draw += secrets.token_hex(8) if seed is None else str(seed)
    digest = hashlib.sha1(draw.encode(), usedforsecurity=False).hexdigest()
    return CONCEPT_ID_BASE + int(digest, 16) % CONCEPT_ID_BASE


def samples_as_concept(samples: Tensor, *, concept_id: int, name: str, batch_size: int) -> Concept:
    r"""
    A :class:`captum.concept.Concept` whose ``data_iter`` yields ``samples`` in batches of
    ``batch_size`` bare tensors (as Captum's concept code expects), on the device of
    ``samples``.
    """
    check_positive_int(batch_size, "batch_size")
    loader = DataLoader(TensorDataset(samples), batch_size=batch_size, collate_fn=_stack_first)
    return Concept(concept_id, name, loader)


def _stack_first(rows: list[tuple[Tensor, ...]]) -> Tensor:
    return torch.stack([row[0] for row in rows])
