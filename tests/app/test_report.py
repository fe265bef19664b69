"""HtmlReport: escaping, tables, figures; checked on the written HTML."""

from __future__ import annotations

import html.parser
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

from captum_netinv.app.report import HtmlReport  # noqa: E402


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows = 0
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag == "tr":
            self.rows += 1
        self._in_cell = tag == "td"

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)
            self._in_cell = False


def test_report_writes_escaped_table_and_figure(tmp_path: Path) -> None:
    report = HtmlReport(tmp_path / "out", "a <b> title")
    report.add_paragraph("x < y & z")
    report.add_table(["neuron", "formula", "auc"], [[0, "a & ~b", 0.91], [1, "<c>", float("nan")]])
    fig, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    image = report.add_figure(fig, "curve", "a curve")
    plt.close(fig)
    page = report.write().read_text()
    assert "a &lt;b&gt; title" in page and "x &lt; y &amp; z" in page
    assert "<c>" not in page and "&lt;c&gt;" in page
    parsed = _Collector()
    parsed.feed(page)
    assert parsed.rows == 3  # header + two rows
    assert parsed.cells == ["0", "a & ~b", "0.91", "1", "<c>", "n/a"]
    assert parsed.images == ["images/curve.png"]
    assert image.exists() and image.read_bytes()[:4] == b"\x89PNG"


def test_report_rejects_ragged_rows(tmp_path: Path) -> None:
    report = HtmlReport(tmp_path, "t")
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        report.add_table(["a", "b"], [[1, 2], [3]])
