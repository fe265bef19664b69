"""The main job end to end (quick budget), and its report page opened in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from captum_netinv.app.demo import run_demo
from captum_netinv.recognition import Explanations

LAYER_WIDTHS = {"conv2": 16, "fc2": 84}


@pytest.fixture(scope="module")
def report_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_demo(tmp_path_factory.mktemp("report"), quick=True, progress=False)


def test_demo_writes_tables_images_and_history(report_index: Path) -> None:
    folder = report_index.parent
    for layer, width in LAYER_WIDTHS.items():
        explanations = Explanations.from_json((folder / f"labels_{layer}.json").read_text())
        assert len(explanations) == width
        assert all(0.5 <= e.auc <= 1.0 for e in explanations if e.formula is not None)
    history = json.loads((folder / "inversion_history.json").read_text())
    assert history and all(len(values) > 0 for values in history.values())
    for name in (
        "inversion_grid",
        "inversion_training_curves",
        "conv2_top_activating_0",
        "shortcut_samples",
    ):
        assert (folder / "images" / f"{name}.png").stat().st_size > 1000


def test_demo_reports_label_accuracy_and_the_shortcut(report_index: Path) -> None:
    summary = json.loads((report_index.parent / "shortcut.json").read_text())
    assert 0.0 <= summary["label_accuracy"] <= 1.0
    shortcut = summary["shortcut"]
    assert len(shortcut["mark_intensity"]) == 10
    assert all("watermark" in formula for _, formula, _ in shortcut["units"])
    page = report_index.read_text()
    assert "Finding a shortcut" in page and 'id="label-accuracy"' in page


@pytest.mark.browser
def test_report_page_in_headless_chromium(report_index: Path, browser: Any, tmp_path: Path) -> None:
    browser.get(report_index.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])"
    )
    assert len(images) > sum(LAYER_WIDTHS.values()) // 2
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert broken == []
    for layer, width in LAYER_WIDTHS.items():
        rows = browser.find_elements("css selector", f"#labels-{layer} tbody tr")
        assert len(rows) == width
    # clicking the AUC header sorts the conv2 table by AUC, descending on the second click
    header = browser.find_element("css selector", "#labels-conv2 th:nth-child(3)")
    header.click()
    header.click()
    aucs = [
        float(cell.get_attribute("data-value"))
        for cell in browser.find_elements("css selector", "#labels-conv2 tbody td:nth-child(3)")
    ]
    assert aucs == sorted(aucs, reverse=True)
    assert browser.save_screenshot(str(tmp_path / "report.png"))


def test_demo_checks_the_labels_of_fc2_units_on_a_page_of_their_own(report_index: Path) -> None:
    folder = report_index.parent
    rows = json.loads((folder / "shortcut.json").read_text())["neuron_label_check"]
    labels = Explanations.from_json((folder / "labels_fc2.json").read_text())
    assert 1 <= len(rows) <= 6  # the quick budget's six best-labeled units
    for row in rows:
        assert row["formula"] == str(labels[row["unit"]].formula)
        assert 0.0 <= row["generated_share"] <= 1.0 and 0.0 <= row["real_share"] <= 1.0
        assert row["median_over_q99"] > 0.0
    assert 'id="neuron-label-check"' in report_index.read_text()
    page = (folder / "neurons.html").read_text()
    assert 'href="neurons.html"' in report_index.read_text() and "fc2 #" in page
    assert (folder / "images" / f"fc2_unit_{rows[0]['unit']}.png").stat().st_size > 1000


def test_demo_has_a_colour_page_with_every_class_judged(report_index: Path) -> None:
    folder = report_index.parent
    colour = json.loads((folder / "shortcut.json").read_text())["colour"]
    for column in ("target hit", "verifier hit", "shape probe", "colour right"):
        assert len(colour[column]) == 9
        assert all(0.0 <= value <= 1.0 for value in colour[column])
    assert len(colour["pixel diversity / real"]) == 9
    assert 0.0 <= colour["near_copy_share"] <= 1.0
    page = (folder / "colour.html").read_text()
    assert page.count("<tr") >= 10 and 'id="colour-per-class"' in page
    assert 'href="colour.html"' in report_index.read_text()
    for name in ("colour_real", "colour_generated"):
        assert (folder / "images" / f"{name}.png").stat().st_size > 1000
