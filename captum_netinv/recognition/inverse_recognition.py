"""InverseRecognition: a Captum layer attribution labeling neurons with formulas of concepts.

The class streams inputs through a model's layer and hands the activations to the same worker as
:func:`explain_activations`, which checks them, runs the beam search and assembles the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from captum.attr._utils.attribution import LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_netinv._activations import InputSource, Reduction, layer_activations
from captum_netinv._captum_names import refuse_captum_name, resolve_alias
from captum_netinv._utils import check_forward_func, check_layer_in_model, excerpt
from captum_netinv.recognition.concepts import (
    ConceptSource,
    check_constant_concepts,
    concept_batches,
    concept_labels,
)
from captum_netinv.recognition.distributed import (
    BatchLayout,
    active_group,
    explain_sharded,
    local_layer_activations,
)
from captum_netinv.recognition.explanations import (
    Explanation,
    Explanations,
    explanations_from_reference,
    explanations_from_search,
)
from captum_netinv.recognition.reference import reference_search
from captum_netinv.recognition.refinement import refined_explanations
from captum_netinv.recognition.search import SearchSettings, beam_search

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["InverseRecognition", "explain_activations"]

#: Samples per forward pass of a tensor ``inputs`` when neither ``batch_size`` nor Captum's
#: ``internal_batch_size`` is given.
_BATCH_SIZE = 256
#: Why :func:`explain_activations` refuses Captum's ``internal_batch_size``, and what to use.
_NO_FORWARD_PASSES = (
    "explain_activations runs no forward passes (it takes activations already computed); to set "
    "the batch size of the forward passes, pass `batch_size` to InverseRecognition.attribute"
)


class InverseRecognition(LayerAttribution):
    r"""
    Inverse Recognition (INVERT, Bykov et al., NeurIPS 2023, https://arxiv.org/abs/2311.13594)
    labels each neuron of a layer with the logical formula of human concepts (AND, OR, NOT of
    up to ``formula_length`` literals) whose presence its activation separates best: the formula
    maximizing (or minimizing) the AUC ``P(a(x+) > a(x-)) + P(a(x+) = a(x-)) / 2`` between the
    samples where the formula holds and the rest, found by beam search and backed by a
    Mann-Whitney U test. It needs only multi-label concept annotations of the samples, no
    segmentation masks.

    The search is exact and vectorized: each neuron is ranked once and a whole level of the
    beam search, for all neurons and beam entries, is a few matrix products on the model's
    device. A conv channel's activation is its spatial mean by default (``"max"`` or a callable
    via ``neuron_reduction``); linear units and logits are used as they are.

    With a ``process_group`` (by default the default group once ``torch.distributed`` is
    initialized, e.g. under ``torchrun``; a group of one rank runs the ordinary path), call
    ``attribute`` on every rank with the same **whole** ``inputs`` and ``concepts`` (the whole
    data set, not each rank's own samples): each rank runs the model on its own share of the
    samples (a contiguous slice of a tensor, every ``world``-th batch of an iterable; a
    map-style ``DataLoader`` is rebuilt over those batches only) and searches its share of the
    neurons, and every rank returns the whole result, equal to one process's, with the labels
    but without the activations (:doc:`/methods/invert`). :func:`explain_activations` takes
    the opposite: each rank's own rows.

    Captum's argument names work as Captum users type them, in ``attribute`` and
    :func:`explain_activations`: ``neuron_selector`` for ``neurons`` (an int or a list of ints;
    a tuple or a callable, Captum's position inside a layer's output, raises a ``TypeError``),
    ``show_progress`` for ``progress`` and ``internal_batch_size`` for ``batch_size``. One
    setting given under both names with different values raises a ``TypeError``.

    An AUC of 1 cannot grow, so a saturated label may hide detail (``blue`` for a unit of blue
    triangles): each :class:`~captum_netinv.Explanation` also carries the share of the neuron's
    top 100 samples its formula covers, its best refinement by one more literal
    (``blue & triangle``) and whether its AUC is saturated. Constant concepts (every sample has
    them, or none) are named in a ``UserWarning`` and never used; only constant ones raise a
    ``ValueError``.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): The model, or a function running it.
            layer (torch.nn.Module): The layer whose neurons are labeled (its output channels /
                        units, or its input with ``attribute_to_layer_input=True``).
            device_ids (list[int], optional): Device IDs of a ``DataParallel`` model run inside
                        ``forward_func``, needed to gather the layer's outputs across devices
                        (not needed when ``forward_func`` is the ``DataParallel`` model).
        """
        check_forward_func(forward_func)
        check_layer_in_model(forward_func, layer)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

    @log_usage()
    def attribute(
        self,
        inputs: InputSource | None,
        concepts: ConceptSource,
        neurons: int | Sequence[int] | None = None,
        formula_length: int = SearchSettings.formula_length,
        beam_size: int = SearchSettings.beam_size,
        min_fraction: float = SearchSettings.min_fraction,
        max_fraction: float = SearchSettings.max_fraction,
        mode: str = SearchSettings.mode,
        neuron_reduction: Reduction = "mean",
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        batch_size: int | None = None,
        progress: bool | None = None,
        concept_names: Sequence[str] | None = None,
        alternative: str | None = SearchSettings.alternative,
        reference_compatible: bool = SearchSettings.reference_compatible,
        process_group: ProcessGroup | None = None,
        neuron_selector: int | Sequence[int] | None = None,
        show_progress: bool | None = None,
        internal_batch_size: int | None = None,
    ) -> Explanations:
        r"""
        Args:
            inputs (Tensor, Iterable or None): The samples, streamed: a tensor (in batches of
                        ``batch_size``) or an iterable of batches (a ``DataLoader``; tensors or
                        ``(inputs, labels, ...)``), any device. None with Captum concepts.
            concepts (Tensor, ndarray, Mapping or list of Concept): An ``(N, C)`` binary
                        matrix (names in ``concept_names``), a mapping name -> ``(N,)`` mask, or
                        ``captum.concept.Concept`` s, whose ``data_iter`` batches are then the
                        samples, each showing only its own concept; on any device.
            neurons (int or sequence of int, optional): Neurons to label. Default: all.
            formula_length (int, optional): Longest formula, in literals. Default: 3
            beam_size (int, optional): Formulas kept per level of the beam search. Default: 5
            min_fraction (float, optional): Smallest admissible fraction of the samples a
                        formula may hold. Default: 0.0
            max_fraction (float, optional): Largest admissible fraction of the samples a
                        formula may hold. Default: 0.5
            mode (str, optional): ``"positive"`` seeks the formula with the highest AUC,
                        ``"negative"`` the one with the lowest. Default: ``"positive"``
            neuron_reduction (str or Callable, optional): How a neuron's output with spatial
                        dimensions becomes one value: ``"mean"``, ``"max"`` or a callable
                        ``(B, ...) -> (B, K)``. Default: ``"mean"``
            additional_forward_args (Any, optional): Extra arguments of ``forward_func``, as in
                        Captum; tensors are sliced with each batch of a tensor ``inputs``.
            attribute_to_layer_input (bool, optional): Label the neurons of the layer's input
                        instead of its output. Default: False
            batch_size (int, optional): Batch size for a tensor ``inputs``. Default: 256
            progress (bool, optional): Show progress bars. Default: True
            concept_names (sequence of str, optional): Names of the columns of a label matrix.
                        Default: ``c0``, ``c1``, ...
            alternative (str, optional): The p-value's test: None for one-sided in the mode's
                        direction, ``"two-sided"``, ``"greater"`` or ``"less"``. Default: None
            reference_compatible (bool, optional): Run the official implementation's search
                        instead (see :doc:`/methods/invert`). Default: False
            process_group (ProcessGroup, optional): Ranks sharing the work: call on every
                        rank with the **whole** data set, the same on all, never a rank's own
                        samples (:doc:`/methods/invert` lists what is refused). Default: the
                        default group once ``torch.distributed`` is initialized
            neuron_selector (int or list of int, optional): Captum's name for ``neurons``; a
                        tuple or a callable raises a ``TypeError``. Default: None
            show_progress (bool, optional): Captum's name for ``progress``. Default: None
            internal_batch_size (int, optional): Captum's name for ``batch_size``. Default: None

        Returns:
            :class:`Explanations`: per neuron the best formula with its AUC, p-value, ``z``,
            support, final beam, best formula of each length; activations on the model's device.

        Examples::

            >>> from captum_netinv.examples.data import digit_concepts, load_mnist
            >>> images, labels = load_mnist()
            >>> concepts, names = digit_concepts(images, labels)
            >>> invert = InverseRecognition(model, model.conv2)
            >>> explanations = invert.attribute(images, concepts, concept_names=names)
            >>> explanations[3].formula, explanations[3].auc
        """
        settings = SearchSettings(
            formula_length=formula_length,
            beam_size=beam_size,
            min_fraction=min_fraction,
            max_fraction=max_fraction,
            mode=mode,
            alternative=alternative,
            reference_compatible=reference_compatible,
        )
        return self._explain(
            inputs=inputs,
            concepts=concepts,
            concept_names=concept_names,
            neurons=_chosen_neurons(neurons, neuron_selector),
            settings=settings,
            process_group=process_group,
            reduction=neuron_reduction,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
            batch_size=_batch_size(batch_size, internal_batch_size),
            progress=_progress(progress, show_progress, default=True),
        )

    def _explain(
        self,
        *,
        inputs: InputSource | None,
        concepts: ConceptSource,
        concept_names: Sequence[str] | None,
        neurons: int | Sequence[int] | None,
        settings: SearchSettings,
        process_group: ProcessGroup | None,
        **forward: Any,
    ) -> Explanations:
        """
        Streams the samples through the layer (with a process group: this rank's share of
        them) and labels the neurons on the reduced activations and the samples' labels.
        """
        group = active_group(process_group)
        concept_data = concept_batches(inputs, concepts, concept_names)
        source: InputSource
        if concept_data is None:
            assert inputs is not None  # concept_batches checks it
            labels, names = concept_labels(concepts, concept_names)  # type: ignore[arg-type]
            source = inputs
        else:
            source = concept_data
        layout = None
        if group is None:
            activations: Tensor | None = layer_activations(
                self.forward_func, self.layer, source, device_ids=self.device_ids, **forward
            )
        else:
            activations, layout = local_layer_activations(
                self.forward_func,
                self.layer,
                source,
                group=group,
                device_ids=self.device_ids,
                **forward,
            )
        if concept_data is not None:
            labels, names = concept_data.labels(), concept_data.names
        return _label_neurons(
            activations,
            labels,
            names,
            neurons=neurons,
            settings=settings,
            device=None,
            progress=forward["progress"],
            group=group,
            layout=layout,
        )


def explain_activations(
    activations: Tensor | np.ndarray,
    concepts: Tensor | np.ndarray | Mapping[str, Any],
    *,
    concept_names: Sequence[str] | None = None,
    formula_length: int = SearchSettings.formula_length,
    beam_size: int = SearchSettings.beam_size,
    min_fraction: float = SearchSettings.min_fraction,
    max_fraction: float = SearchSettings.max_fraction,
    mode: str = SearchSettings.mode,
    alternative: str | None = SearchSettings.alternative,
    neurons: int | Sequence[int] | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    reference_compatible: bool = SearchSettings.reference_compatible,
    process_group: ProcessGroup | None = None,
    neuron_selector: int | Sequence[int] | None = None,
    show_progress: bool | None = None,
    internal_batch_size: int | None = None,
) -> Explanations:
    r"""
    Labels each neuron of a precomputed activation matrix with the formula of concepts whose
    presence its activations separate best (INVERT, Bykov et al., NeurIPS 2023), scored by AUC
    and tested with the Mann-Whitney U test. Gives the same results as
    :meth:`InverseRecognition.attribute` on the same activations.

    Args:
        activations (Tensor or ndarray): ``(N, K)`` activations of ``K`` neurons on ``N``
                    samples (``(N,)`` for one neuron), used as they are (no squashing).
        concepts (Tensor, ndarray or Mapping): ``(N, C)`` binary labels (bool or 0/1), or a
                    mapping concept name -> ``(N,)`` binary mask.
        concept_names (sequence of str, optional): Names of the label columns; only with a
                    matrix. Default: ``c0``, ``c1``, ...
        neurons (int or sequence of int, optional): Columns to explain. Default: all.
        formula_length (int, optional): Longest formula, in literals. Default: 3
        beam_size (int, optional): Formulas kept per level. Default: 5
        min_fraction (float, optional): Smallest admissible fraction of samples a formula may
                    hold. Default: 0.0
        max_fraction (float, optional): Largest admissible fraction. Default: 0.5
        mode (str, optional): ``"positive"`` maximizes the AUC (concepts that raise the
                    activation), ``"negative"`` minimizes it. Default: ``"positive"``
        alternative (str, optional): P-value test: None for one-sided in the mode's direction
                    (two-sided with ``reference_compatible``), ``"two-sided"``, ``"greater"`` or
                    ``"less"``. Default: None
        device (torch.device or str, optional): Where the search runs. Default: the device of
                    ``activations`` (the CPU with ``reference_compatible``).
        progress (bool, optional): Show a progress bar. Default: False
        reference_compatible (bool, optional): Reproduce the official implementation's search
                    exactly (lapalap/invert v1.1) instead of running ours;
                    ``Explanations.settings`` says which ran. :doc:`/methods/invert` lists the
                    differences. Default: False
        process_group (ProcessGroup, optional): Share the work over the ranks of this group:
                    call on every rank with the activations and labels of **its own samples**
                    (rank 0's rows, then rank 1's, ...; e.g. ``activations[rows]`` with
                    ``rows = rank_slice(len(activations))``), never the whole matrix on every
                    rank; every rank returns the whole result (:doc:`/methods/invert`).
                    Default: the default group once ``torch.distributed`` is initialized
        neuron_selector (int or list of int, optional): Captum's name for ``neurons`` (see
                    :class:`InverseRecognition`). Default: None
        show_progress (bool, optional): Captum's name for ``progress``. Default: None
        internal_batch_size (int, optional): Captum's batch size of forward passes, which
                    this function does not run: any value raises a ``TypeError`` that points
                    to ``batch_size`` of :meth:`InverseRecognition.attribute`. Default: None

    Returns:
        :class:`Explanations`, one per neuron, with its final beam and its best formula of each
        length from 1 to ``formula_length`` (Python values), carrying ``activations`` as given
        (on their device) and the labels moved to that device, for plots. ``activations`` and
        ``concepts`` may lie on different devices: the search runs on ``device``.

    Examples::

        >>> activations = torch.randn(1000, 4)
        >>> labels = torch.rand(1000, 6) < 0.2
        >>> explanations = explain_activations(activations, labels, formula_length=2)
        >>> print(explanations[0].formula, explanations[0].auc)
    """
    refuse_captum_name("internal_batch_size", internal_batch_size, _NO_FORWARD_PASSES)
    settings = SearchSettings(
        formula_length=formula_length,
        beam_size=beam_size,
        min_fraction=min_fraction,
        max_fraction=max_fraction,
        mode=mode,
        alternative=alternative,
        reference_compatible=reference_compatible,
    )
    labels, names = concept_labels(concepts, concept_names)
    return _label_neurons(
        activations,
        labels,
        names,
        neurons=_chosen_neurons(neurons, neuron_selector),
        settings=settings,
        device=device,
        progress=_progress(progress, show_progress, default=False),
        source="activations",
        group=active_group(process_group),
    )


def _label_neurons(
    activations: Tensor | np.ndarray | None,
    labels: Tensor,
    names: list[str],
    *,
    neurons: int | Sequence[int] | None,
    settings: SearchSettings,
    device: torch.device | str | None,
    progress: bool,
    source: str = "inputs",
    group: ProcessGroup | None = None,
    layout: BatchLayout | None = None,
) -> Explanations:
    r"""
    :func:`explain_activations` with checked ``settings`` and labels from
    :func:`~captum_netinv.recognition.concepts.concept_labels`; ``source`` names the argument
    the activations came from in error messages. With a ``group``, ``activations`` are this
    rank's rows (None: none) and :func:`~captum_netinv.recognition.distributed.explain_sharded`
    shares out the work (``layout``: see there).
    """
    values = None if activations is None else _checked_activations(activations, source)
    # without a layout, a rank's labels are its own rows: constant there says nothing yet
    whole_labels = group is None or layout is not None
    if whole_labels:
        check_constant_concepts(labels, names)
    settings = settings.for_concepts(labels.shape[1])
    if group is not None:
        explained, labels = explain_sharded(
            values,
            labels,
            names,
            group=group,
            layout=layout,
            neuron_indices=partial(_neuron_indices, neurons),
            # one progress bar over the rounds (rank 0), not one a round
            explain=partial(_explain_columns, names=names, settings=settings, progress=False),
            device=device,
            progress=progress,
            source=source,
        )
        if not whole_labels:
            check_constant_concepts(labels, names)
        count, values = labels.shape[0], None  # the activations are spread over the ranks
    else:
        assert values is not None
        count = labels.shape[0]
        if values.shape[0] != count:
            raise ValueError(
                f"`concepts` labels {count} samples but `{source}` holds "
                f"{values.shape[0]}; they must be the same samples"
            )
        chosen = _neuron_indices(neurons, values.shape[1])
        target = torch.device(device) if device is not None else values.device
        every = chosen == list(range(values.shape[1]))  # no copy of all the columns
        selected = (values if every else values[:, chosen]).to(target)
        finite = torch.isfinite(selected).all(dim=0)
        if not bool(finite.all()):
            bad = [chosen[index] for index in torch.nonzero(~finite).flatten().tolist()]
            raise ValueError(f"`{source}` holds NaN or infinite values for neurons {bad}")
        labels = labels.to(target)
        explained = _explain_columns(
            selected, labels, chosen=chosen, names=names, settings=settings, progress=progress
        )
        labels = labels.to(values.device)  # kept beside the activations: masks index them
    return Explanations(
        explained,
        names,
        n_samples=count,
        settings=settings.to_dict(),
        activations=values,
        concepts=labels,
    )


def _checked_activations(activations: Tensor | np.ndarray, source: str) -> Tensor:
    """``activations`` as an ``(N, K)`` tensor of real numbers, else raises naming ``source``."""
    values = torch.as_tensor(activations)
    if values.dim() == 1:
        values = values.unsqueeze(1)
    if values.dim() != 2:
        raise ValueError(
            f"`{source}` must give (samples, neurons) activations, got shape {tuple(values.shape)}"
        )
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"`{source}` must hold real numbers, got {values.dtype}")
    return values


def _explain_columns(
    selected: Tensor,
    labels: Tensor,
    chosen: list[int],
    names: list[str],
    settings: SearchSettings,
    progress: bool,
) -> list[Explanation]:
    """The explanations of the finite ``(N, k)`` columns ``selected`` (layer ``chosen``), with
    their coverage of the top activations and their refinements."""
    labels = labels.to(selected.device)
    if settings.reference_compatible:
        found = _reference_explanations(
            selected.cpu(), labels, names=names, neurons=chosen, settings=settings
        )
    else:
        result = beam_search(selected, labels, settings, progress=progress)
        found = explanations_from_search(result, chosen, names, labels.shape[0], settings)
    return refined_explanations(found, selected, labels, names=names, settings=settings)


def _reference_explanations(
    activations: Tensor,
    labels: Tensor,
    names: list[str],
    neurons: list[int],
    settings: SearchSettings,
) -> list[Explanation]:
    """The official search's explanations of the columns of ``activations`` (layer ``neurons``)."""
    results = reference_search(
        activations,
        labels.cpu(),
        names,
        formula_length=settings.formula_length,
        beam_size=settings.beam_size,
        min_fraction=settings.min_fraction,
        max_fraction=settings.max_fraction,
        mode=cast(Any, settings.mode),
        alternative=cast(Any, settings.alternative),
    )
    return explanations_from_reference(results, neurons, activations)


def _chosen_neurons(
    neurons: int | Sequence[int] | None, neuron_selector: int | Sequence[int] | None
) -> int | Sequence[int] | None:
    r"""``neurons``, or Captum's ``neuron_selector`` in its place when it names whole neurons."""
    if callable(neuron_selector) or isinstance(neuron_selector, tuple):
        raise TypeError(
            f"`neuron_selector` {excerpt(neuron_selector)} cannot name INVERT's neurons: Captum "
            "reads a tuple as one position inside the layer's output (channel, row, column) and "
            "a callable as a function of that output, while INVERT labels whole neurons (a "
            "conv channel's reduced value, a linear unit); pass `neurons` (or "
            "`neuron_selector`) an int or a list of ints, e.g. neurons=[3, 5]"
        )
    return resolve_alias(
        ours_name="neurons",
        ours_value=neurons,
        captum_name="neuron_selector",
        captum_value=neuron_selector,
        default=None,
    )


def _batch_size(batch_size: int | None, internal_batch_size: int | None) -> int:
    r"""``batch_size``, or Captum's ``internal_batch_size`` in its place, else 256."""
    return resolve_alias(
        ours_name="batch_size",
        ours_value=batch_size,
        captum_name="internal_batch_size",
        captum_value=internal_batch_size,
        default=_BATCH_SIZE,
    )


def _progress(progress: bool | None, show_progress: bool | None, default: bool) -> bool:
    r"""``progress``, or Captum's ``show_progress`` in its place, else ``default``."""
    return resolve_alias(
        ours_name="progress",
        ours_value=progress,
        captum_name="show_progress",
        captum_value=show_progress,
        default=default,
    )


def _neuron_indices(neurons: int | Sequence[int] | Tensor | None, width: int) -> list[int]:
    r"""The neuron indices to explain, checked against the layer's ``width``."""
    if neurons is None:
        return list(range(width))
    values = torch.as_tensor(neurons).reshape(-1)
    if values.is_floating_point() or values.dtype == torch.bool or values.numel() == 0:
        raise TypeError(
            f"`neurons` must be an int or a non-empty sequence of ints, got {neurons!r}"
        )
    indices = values.tolist()
    wrong = [index for index in indices if not 0 <= index < width]
    if wrong:
        raise ValueError(f"`neurons` {wrong} out of range: the layer has {width} neurons")
    if len(set(indices)) != len(indices):
        raise ValueError(f"`neurons` must not repeat a neuron, got {indices}")
    return indices
