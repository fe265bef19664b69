"""`captum-netinv report` on a model and data of one's own, end to end, and its bad inputs.

The models are built so that the truth is known: each logit is its colour's mean minus the
others', so INVERT must label logit ``k`` with class ``k`` and a generated sample of class ``k``
must be classified ``k``.
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from captum_netinv.app import cli
from captum_netinv.app.concept_tables import load_concepts
from captum_netinv.app.inputs import ImageData, load_data
from captum_netinv.recognition import Explanations

COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 1.0, 0.1), "blue": (0.1, 0.1, 1.0)}
PER_CLASS = 8
SIZE = 16
BUDGET = ["--steps", "80", "--units", "2", "--no-progress", "--seed", "0"]

MODEL_SOURCE = '''
import torch
from torch import nn


class ColourNet(nn.Module):
    """Logit k: mean of channel k minus the mean of the others, scaled."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(3, 3)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(inputs)).flatten(1))


def colour_net() -> ColourNet:
    net = ColourNet()
    with torch.no_grad():
        net.features[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        net.features[0].bias.zero_()
        net.head.weight.copy_(12.0 * torch.eye(3) - 6.0)
        net.head.bias.zero_()
    return net.eval()


def untrained() -> ColourNet:
    return ColourNet()
'''


@pytest.fixture(scope="module")
def factory_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("factory")
    (folder / "colour_models.py").write_text(textwrap.dedent(MODEL_SOURCE))
    sys.path.insert(0, str(folder))
    return "colour_models"


def _images(seed: int) -> tuple[np.ndarray, list[int], list[str]]:
    r"""Coloured squares and circles on a dark noisy background: (N, H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[:SIZE, :SIZE]
    pictures, classes, shapes = [], [], []
    for index, colour in enumerate(COLOURS.values()):
        for number in range(PER_CLASS):
            centre_y, centre_x = rng.integers(5, SIZE - 5, size=2)
            shape = "square" if number % 2 == 0 else "circle"
            if shape == "square":
                mask = (abs(grid_y - centre_y) <= 4) & (abs(grid_x - centre_x) <= 4)
            else:
                mask = (grid_y - centre_y) ** 2 + (grid_x - centre_x) ** 2 <= 20
            picture = rng.uniform(0.0, 0.15, size=(SIZE, SIZE, 3))
            picture[mask] = colour
            pictures.append((picture * 255).astype(np.uint8))
            classes.append(index)
            shapes.append(shape)
    return np.stack(pictures), classes, shapes


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    r"""An ImageFolder of the pictures and a concept table matched by file name."""
    root = tmp_path_factory.mktemp("folder")
    pictures, classes, shapes = _images(seed=0)
    names = list(COLOURS)
    rows = []
    for number, (picture, index, shape) in enumerate(zip(pictures, classes, shapes, strict=True)):
        (root / "images" / names[index]).mkdir(parents=True, exist_ok=True)
        file = f"{names[index]}/{number:03d}.png"
        Image.fromarray(picture).save(root / "images" / file)
        rows.append(
            [file] + [int(name == names[index]) for name in names] + [int(shape == "square")]
        )
    with (root / "concepts.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *names, "square"])
        writer.writerows(rows)
    return root / "images", root / "concepts.csv"


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory: pytest.TempPathFactory, factory_module: str) -> Path:
    from colour_models import colour_net  # type: ignore[import-not-found]

    path = tmp_path_factory.mktemp("model") / "colour_net.pt"
    torch.jit.save(torch.jit.script(colour_net()), path)
    return path


def _report(out: Path, *arguments: str) -> dict[str, object]:
    assert cli.main(["report", *arguments, "--out", str(out), *BUDGET]) == 0
    return json.loads((out / "summary.json").read_text())


def _check_report(out: Path, layer: str) -> None:
    r"""The pages and numbers every report of the colour models must show."""
    labels = Explanations.from_json((out / f"labels_{layer}.json").read_text())
    assert [str(item.formula) for item in labels] == list(COLOURS)
    assert all(item.auc > 0.99 for item in labels)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inversion"]["hit_rate"] >= 0.9  # generated samples are accepted
    rows = summary["neuron_label_check"]
    assert len(rows) == 2 and all(row["generated_share"] is not None for row in rows)
    page = (out / "index.html").read_text()
    for part in (f'id="labels-{layer}"', 'id="inversion-per-class"', 'href="neurons.html"'):
        assert part in page
    assert "red" in (out / "neurons.html").read_text()
    for image in ("inversion_grid", "inversion_training_curves"):
        assert (out / "images" / f"{image}.png").stat().st_size > 1000
    (grid,) = (out / "images").glob("*_top_activating_0.png")  # of the first layer
    assert grid.stat().st_size > 1000


@pytest.fixture(scope="module")
def torchscript_report(
    tmp_path_factory: pytest.TempPathFactory, scripted_model: Path, image_folder: tuple[Path, Path]
) -> Path:
    out = tmp_path_factory.mktemp("report")
    folder, concepts = image_folder
    _report(out, "--model", str(scripted_model), "--data", str(folder), "--concepts", str(concepts))
    return out


def test_report_of_a_torchscript_model_on_an_image_folder(torchscript_report: Path) -> None:
    _check_report(torchscript_report, "output")
    assert (torchscript_report / "checkpoints" / "network_inversion.pt").exists()


def test_report_of_a_factory_model_with_weights_on_an_npz_file(
    tmp_path: Path, factory_module: str
) -> None:
    from colour_models import colour_net  # type: ignore[import-not-found]

    weights = tmp_path / "weights.pt"
    torch.save(colour_net().state_dict(), weights)
    pictures, classes, shapes = _images(seed=1)
    files = np.array([f"{number:03d}.png" for number in range(len(classes))])
    data = tmp_path / "data.npz"
    np.savez(data, images=pictures.transpose(0, 3, 1, 2), labels=np.array(classes), files=files)
    mapping = tmp_path / "mapping.csv"
    names = list(COLOURS)
    with mapping.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "concepts"])
        for file, index, shape in zip(files, classes, shapes, strict=True):
            writer.writerow([file, f"{names[index]};{shape}"])
    out = tmp_path / "report"
    model = f"{factory_module}:untrained"
    arguments = ["--model", model, "--weights", str(weights), "--data", str(data)]
    arguments += ["--concepts", str(mapping), "--classes", ",".join(names)]
    _report(out, *arguments, "--layer", "features.0", "output")
    _check_report(out, "output")
    conv = Explanations.from_json((out / "labels_features.0.json").read_text())
    assert [str(item.formula) for item in conv] == names  # channel k is colour k too


def test_report_of_a_torch_export_program_labels_its_inner_layer(
    tmp_path: Path, factory_module: str, image_folder: tuple[Path, Path]
) -> None:
    from colour_models import colour_net  # type: ignore[import-not-found]

    program = tmp_path / "colour_net.pt2"
    example = torch.rand(2, 3, SIZE, SIZE)
    batch = torch.export.Dim("batch")
    torch.export.save(
        torch.export.export(colour_net(), (example,), dynamic_shapes=({0: batch},)), program
    )
    folder, concepts = image_folder
    out = tmp_path / "report"
    arguments = ["--model", str(program), "--data", str(folder), "--concepts", str(concepts)]
    _report(out, *arguments, "--layer", "features.0", "output")
    _check_report(out, "output")
    conv = Explanations.from_json((out / "labels_features.0.json").read_text())
    assert [str(item.formula) for item in conv] == list(COLOURS)


def test_report_without_concepts_says_it_has_no_labels(
    tmp_path: Path, scripted_model: Path, image_folder: tuple[Path, Path]
) -> None:
    summary = _report(tmp_path, "--model", str(scripted_model), "--data", str(image_folder[0]))
    assert summary["neuron_label_check"] == []
    assert "No concepts were given" in (tmp_path / "index.html").read_text()
    assert not list(tmp_path.glob("labels_*.json"))


def test_resume_continues_the_fits_from_their_checkpoints(
    tmp_path: Path, scripted_model: Path, image_folder: tuple[Path, Path]
) -> None:
    arguments = ["--model", str(scripted_model), "--data", str(image_folder[0])]
    _report(tmp_path, *arguments)
    first = json.loads((tmp_path / "inversion_history.json").read_text())
    assert cli.main(["report", *arguments, "--out", str(tmp_path), "--resume", *BUDGET]) == 0
    again = json.loads((tmp_path / "inversion_history.json").read_text())
    assert again == first  # the finished fit is read back, not run again


def test_class_concepts_with_an_is_a_hierarchy(tmp_path: Path) -> None:
    hierarchy = tmp_path / "is_a.csv"
    hierarchy.write_text("red,warm\nwarm,colour\nblue,cold\ncold,colour\n")
    data = ImageData(
        images=torch.zeros(3, 3, 2, 2),
        labels=torch.tensor([0, 2, 1]),
        class_names=None,
        files=None,
        normalization=None,
    )
    matrix, names = load_concepts("classes", data, ["red", "green", "blue"], str(hierarchy))
    assert names == ["red", "green", "blue", "cold", "colour", "warm"]
    assert matrix.tolist() == [
        [True, False, False, False, True, True],
        [False, False, True, True, True, False],
        [False, True, False, False, False, False],
    ]


def test_data_from_a_pt_file_and_from_a_dataset_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = torch.rand(5, 3, 4, 4)
    torch.save({"images": pixels, "labels": torch.arange(5)}, tmp_path / "data.pt")
    data = load_data(str(tmp_path / "data.pt"), mean=[0.5] * 3, std=[0.25] * 3)
    torch.testing.assert_close(data.images, (pixels - 0.5) / 0.25)
    assert data.labels is not None and data.labels.tolist() == [0, 1, 2, 3, 4]
    (tmp_path / "my_data.py").write_text(
        "import torch\n\n\ndef dataset():\n"
        "    return [(torch.ones(3, 4, 4) * k, k) for k in range(3)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_data("my_data:dataset", progress=False)
    assert data.images.shape == (3, 3, 4, 4) and data.labels is not None
    assert data.images[2].eq(2.0).all() and data.labels.tolist() == [0, 1, 2]


def test_no_subcommand_runs_the_mnist_example_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(cli, "mnist_job", lambda out, **options: calls.append(options) or out)
    monkeypatch.setattr(cli, "run_report", lambda job: Path(job) / "index.html")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # auto: the CPU
    assert cli.main(["--out", "somewhere", "--quick", "--no-progress"]) == 0
    assert cli.main(["report", "--example", "mnist", "--seed", "3"]) == 0
    cpu = torch.device("cpu")
    assert calls[0] == {
        "quick": True,
        "seed": 0,
        "progress": False,
        "resume": False,
        "device": cpu,
    }
    assert calls[1]["seed"] == 3 and calls[1]["quick"] is False


def _error(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    assert cli.main(["report", *arguments, "--no-progress"]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--model", "missing.pt", "--data", "{folder}"], "--model: no such file: 'missing.pt'"),
        (["--model", "{model}", "--data", "missing_folder"], "--data: 'missing_folder' is no"),
        (["--model", "{model}", "--data", "{folder}", "--layer", "nope"], "--layer: the model"),
        (["--model", "{model}", "--data", "{folder}", "--classes", "a,b"], "--classes: 2 classes"),
        (["--model", "colour_models:nothing", "--data", "{folder}"], "has no attribute"),
        (
            ["--model", "colour_models:untrained", "--weights", "w.pt", "--data", "{folder}"],
            "--weights: no such",
        ),
    ],
)
def test_bad_inputs_name_their_argument(
    capsys: pytest.CaptureFixture[str],
    scripted_model: Path,
    image_folder: tuple[Path, Path],
    arguments: list[str],
    expected: str,
) -> None:
    filled = [a.format(model=scripted_model, folder=image_folder[0]) for a in arguments]
    assert expected in _error(capsys, *filled)


def test_a_model_that_fails_on_the_data_shows_the_shapes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, scripted_model: Path
) -> None:
    grey = tmp_path / "grey.npz"
    np.savez(grey, images=np.zeros((4, 1, SIZE, SIZE), dtype=np.float32))
    message = _error(capsys, "--model", str(scripted_model), "--data", str(grey))
    assert "--model: fails on --data's inputs of shape (2, 1, 16, 16)" in message


def test_a_concept_table_that_does_not_match_the_data(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    scripted_model: Path,
    image_folder: tuple[Path, Path],
) -> None:
    table = tmp_path / "short.csv"
    table.write_text("red,green,blue\n1,0,0\n0,1,0\n")
    message = _error(
        capsys,
        "--model",
        str(scripted_model),
        "--data",
        str(image_folder[0]),
        "--concepts",
        str(table),
    )
    assert f"--concepts: 2 rows in {str(table)!r} for {3 * PER_CLASS} samples" in message


def test_a_gpu_asked_for_where_there_is_none(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    scripted_model: Path,
    image_folder: tuple[Path, Path],
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = _error(
        capsys, "--model", str(scripted_model), "--data", str(image_folder[0]), "--device", "cuda"
    )
    assert "--device: cuda asked for, but no CUDA device is available" in message


def test_the_example_runs_on_the_device_asked_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = _error(capsys, "--example", "mnist", "--device", "cuda")
    assert "--device: cuda asked for, but no CUDA device is available" in message
    # the flags of the earlier `python -m captum_netinv` take it too, and --help lists it
    assert cli.main(["--device", "cuda", "--no-progress"]) == 2
    assert "--device" in cli.build_parser().format_help()


def test_argparse_rejects_an_unknown_device() -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["report", "--device", "tpu"])
    assert raised.value.code == 2


@pytest.mark.browser
def test_own_model_report_in_headless_chromium(torchscript_report: Path, browser: Any) -> None:
    for page in ("index.html", "neurons.html"):
        browser.get((torchscript_report / page).resolve().as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
        )
        assert images and all(complete and width > 0 for complete, width in images)
    browser.get((torchscript_report / "index.html").resolve().as_uri())
    rows = browser.find_elements("css selector", "#labels-output tbody tr")
    assert len(rows) == len(COLOURS)
