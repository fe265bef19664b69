"""The command line: `captum-netinv report` on a model and data of one's own, or the MNIST example.

``captum-netinv`` (and ``python -m captum_netinv``) with no subcommand runs the MNIST example as
before; every wrong input ends in a one-line message naming the argument and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from captum_netinv.app.concept_tables import CLASSES, load_concepts
from captum_netinv.app.demo import mnist_job
from captum_netinv.app.inputs import ImageData, load_data
from captum_netinv.app.loading import (
    OUTPUT_LAYER,
    ReportInputError,
    check_model_on_inputs,
    load_model,
    resolve_device,
    resolve_layers,
)
from captum_netinv.app.pipeline import ReportBudget, ReportJob, class_judge, run_report

__all__ = ["build_parser", "main"]

_PROGRAM = "captum-netinv"
_EXAMPLES = ("mnist",)
#: Exit code of a wrong input, as argparse's.
_USAGE_ERROR = 2
_DEFAULT_STEPS = 600
_DEFAULT_UNITS = 8
_SAMPLES_PER_CLASS = 8
_EVALUATION_PER_CLASS = 16
#: Label figures per layer (best AUC first): a wide layer's table holds every unit.
_LABEL_FIGURES = 32


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="report", help="report folder (default: report)")
    parser.add_argument("--quick", action="store_true", help="reduced budget (the example)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every fit and draw")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where everything runs (default auto: CUDA when there is one)",
    )


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--example", choices=_EXAMPLES, help="the built-in example input")
    parser.add_argument(
        "--model",
        help="TorchScript file, torch.export program (.pt2) or package.module:factory",
    )
    parser.add_argument("--weights", help="state dict of a module:factory model")
    parser.add_argument(
        "--data", help="ImageFolder directory, .npz / .pt file or package.module:factory"
    )
    parser.add_argument("--size", type=int, help="ImageFolder: resize and crop to SIZE pixels")
    parser.add_argument("--mean", type=float, nargs="+", help="per-channel normalization mean")
    parser.add_argument("--std", type=float, nargs="+", help="per-channel normalization std")
    parser.add_argument("--transform", help="ImageFolder: package.module:factory of a transform")
    parser.add_argument(
        "--layer",
        nargs="+",
        default=[OUTPUT_LAYER],
        help=f"dotted module names to label (default: {OUTPUT_LAYER}, the logits)",
    )
    parser.add_argument(
        "--concepts",
        help=f"CSV table (0/1 per concept), CSV mapping (file,concepts) or {CLASSES!r}",
    )
    parser.add_argument("--is-a", help="with --concepts classes: child,parent lines")
    parser.add_argument("--classes", help="class names: a file (one a line), a,b,c or a count")
    parser.add_argument(
        "--steps", type=int, default=_DEFAULT_STEPS, help="steps of each generator fit"
    )
    parser.add_argument("--units", type=int, default=_DEFAULT_UNITS, help="labeled units to invert")
    parser.add_argument(
        "--resume", action="store_true", help="continue the fits from their checkpoints"
    )


def build_parser() -> argparse.ArgumentParser:
    r"""
    The parser of ``captum-netinv``: the ``report`` subcommand, and the MNIST example's flags
    when no subcommand is given (``python -m captum_netinv --out report``, as before).

    Returns:
        *argparse.ArgumentParser*.
    """
    parser = argparse.ArgumentParser(
        prog=_PROGRAM,
        description="Label a classifier's neurons with INVERT and invert it; write an HTML "
        "report. With no subcommand: the MNIST example.",
    )
    _common_options(parser)
    commands = parser.add_subparsers(dest="command")
    report = commands.add_parser(
        "report",
        help="write the report of a model and data (or --example mnist)",
        description="Write the HTML report of a classifier: INVERT labels of --layer, the "
        "NeuronInversion page of the labeled units, the Network Inversion of its classes.",
    )
    _common_options(report)
    _report_options(report)
    return parser


def _class_names(spec: str | None) -> list[str] | None:
    r"""``--classes`` as names: a file, a comma list or a count (None: not given)."""
    if spec is None:
        return None
    if Path(spec).is_file():
        return [line.strip() for line in Path(spec).read_text().splitlines() if line.strip()]
    if spec.isdigit():
        return [str(index) for index in range(int(spec))]
    return [name.strip() for name in spec.split(",") if name.strip()]


def _with_class_labels(data: ImageData, class_names: list[str]) -> ImageData:
    r"""ImageFolder labels (folder indices) turned into indices of ``class_names``."""
    if data.class_names is None or data.labels is None or data.class_names == class_names:
        return data
    unknown = [name for name in data.class_names if name not in class_names]
    if unknown:
        raise ReportInputError(f"--classes: the class folders {unknown} are not among them")
    index = [class_names.index(name) for name in data.class_names]
    labels = data.labels.new_tensor(index)[data.labels]
    return ImageData(
        images=data.images,
        labels=labels,
        class_names=class_names,
        files=data.files,
        normalization=data.normalization,
    )


def _shown(names: Sequence[str], first: int = 10) -> str:
    r"""The first names of a list, and how many more there are."""
    more = f", ... ({len(names) - first} more)" if len(names) > first else ""
    return ", ".join(names[:first]) + more


def _user_job(args: argparse.Namespace) -> ReportJob:
    r"""Loads and checks every input of ``report``; raises ReportInputError on a wrong one."""
    if args.model is None or args.data is None:
        raise ReportInputError("--model and --data are required (or --example mnist)")
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights).to(device)
    data = load_data(
        args.data,
        size=args.size,
        mean=args.mean,
        std=args.std,
        transform=args.transform,
        progress=not args.no_progress,
    )
    given = _class_names(args.classes)
    outputs = check_model_on_inputs(model, data.images, len(given) if given else None)
    if given is None and data.class_names is not None and len(data.class_names) != outputs:
        raise ReportInputError(
            f"--data: {len(data.class_names)} class folders, but the model has {outputs} "
            "outputs (name them with --classes)"
        )
    if given is not None and args.classes.isdigit() and data.class_names is not None:
        given = data.class_names if len(data.class_names) == len(given) else given
    names = given or data.class_names or [str(index) for index in range(outputs)]
    data = _with_class_labels(data, names)
    if data.labels is not None and int(data.labels.max()) >= outputs:
        raise ReportInputError(
            f"--data: label {int(data.labels.max())} for a model of {outputs} outputs"
        )
    layers = resolve_layers(model, args.layer)
    concepts = (
        load_concepts(args.concepts, data, class_names=names, is_a=args.is_a)
        if args.concepts
        else None
    )
    shape = "x".join(str(size) for size in data.images.shape[1:])
    return ReportJob(
        model=model,
        data=data,
        layers=layers,
        class_names=names,
        concepts=concepts,
        budget=ReportBudget(
            inversion_steps=args.steps,
            samples_per_class=_SAMPLES_PER_CLASS,
            evaluation_per_class=_EVALUATION_PER_CLASS,
            neuron_units=args.units,
            neuron_steps=args.steps,
            neuron_figures=args.units,
            label_figures=_LABEL_FIGURES,
        ),
        out=Path(args.out),
        title=f"captum_netinv report: {Path(args.model).name}",
        description=f"Model: {args.model} ({outputs} classes: {_shown(names)}), on "
        f"{device}. Data: {args.data}, {len(data.images)} samples of {shape}. Layers: "
        f"{', '.join(layers)}.",
        seed=args.seed,
        progress=not args.no_progress,
        resume=args.resume,
        judge=class_judge(model, names) if concepts is not None else None,
    )


def _job(args: argparse.Namespace) -> ReportJob:
    for flag in ("model", "data", "concepts", "weights"):
        if args.example is not None and getattr(args, flag) is not None:
            raise ReportInputError(f"--{flag}: not with --example {args.example}")
    for flag in ("steps", "units"):
        if getattr(args, flag) <= 0:
            raise ReportInputError(f"--{flag}: must be positive, got {getattr(args, flag)}")
    if args.example is None:
        return _user_job(args)
    return mnist_job(
        args.out,
        quick=args.quick,
        seed=args.seed,
        progress=not args.no_progress,
        resume=args.resume,
        device=resolve_device(args.device),
    )


def main(argv: Sequence[str] | None = None) -> int:
    r"""
    Entry point of ``captum-netinv``, ``captum-netinv-demo`` and ``python -m captum_netinv``.

    Args:
        argv (Sequence[str], optional): The arguments. Default: ``sys.argv[1:]``

    Returns:
        *int*: 0 when the report was written, 2 for a wrong input (a one-line message).

    Examples::

        >>> main(["report", "--example", "mnist", "--quick", "--out", "report"])
        0
    """
    args = build_parser().parse_args(argv)
    matplotlib.use("Agg")  # the command line writes files; it never opens a window
    if args.command is None:  # the flags of the earlier `python -m captum_netinv`
        legacy = list(argv) if argv is not None else sys.argv[1:]
        args = build_parser().parse_args(["report", "--example", "mnist", *legacy])
    try:
        job = _job(args)
    except ReportInputError as error:
        print(f"{_PROGRAM} report: error: {error}", file=sys.stderr)
        return _USAGE_ERROR
    run_report(job)
    return 0
