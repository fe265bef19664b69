"""A self-contained HTML report: headings, text, images and sortable tables in one folder.

The demo writes its results with it; every value is escaped, images are files beside the page,
and tables sort by a click on a column header (a few lines of inline JavaScript, no network).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

__all__ = [
    "HtmlReport",
]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .3rem; }
figure { display: inline-block; margin: .5rem; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85rem; color: #555; }
table.sortable { border-collapse: collapse; font-size: .85rem; margin: 1rem 0; }
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: .25rem .5rem; }
table.sortable th { background: #f0f0f0; cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

# Sorts a table by the clicked column: numbers numerically (data-value), text alphabetically.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (header, column) {
    header.addEventListener("click", function () {
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = html.escape("" if value is None else str(value))
        return f'<td data-value="{text}">{text}</td>'
    if isinstance(value, float) and math.isnan(value):
        return '<td class="num" data-value="-Infinity">n/a</td>'  # sorts as lowest
    shown = f"{value:.3g}" if isinstance(value, float) and abs(value) < 1e-3 else f"{value:.4g}"
    return f'<td class="num" data-value="{value!r}">{shown}</td>'


class HtmlReport:
    r"""
    Collects the parts of a report and writes ``index.html`` with its images into one folder.

    Args:
        folder (str or Path): Output folder; created if missing.
        title (str): Page title.
        page (str, optional): File name of the page, so that several pages share one folder
                    (and its ``images``). Default: ``"index.html"``

    Examples::

        >>> report = HtmlReport("report", "Demo")
        >>> report.add_table(["neuron", "auc"], [[0, 0.93], [1, 0.71]])
        >>> path = report.write()
    """

    def __init__(self, folder: str | Path, title: str, page: str = "index.html") -> None:
        if not page.endswith(".html") or "/" in page or "\\" in page:
            raise ValueError(f"`page` must be a file name ending in .html, got {page!r}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.page = page
        self._parts: list[str] = []

    def add_heading(self, text: str, level: int = 2) -> None:
        """Adds a section heading (``level`` 2 to 4)."""
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def add_paragraph(self, text: str) -> None:
        """Adds a paragraph of plain (escaped) text."""
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def add_link(self, text: str, href: str) -> None:
        """Adds a paragraph holding one link (e.g. to another page of the folder)."""
        self._parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')

    def add_figure(self, figure: Figure, name: str, caption: str = "", dpi: int = 90) -> Path:
        """Saves ``figure`` as ``images/<name>.png`` and shows it with ``caption``."""
        images = self.folder / "images"
        images.mkdir(exist_ok=True)
        path = images / f"{name}.png"
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
        source = html.escape(path.relative_to(self.folder).as_posix())
        self._parts.append(
            f'<figure><img src="{source}" alt="{html.escape(caption or name)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return path

    def add_table(
        self, columns: Sequence[str], rows: Sequence[Sequence[object]], table_id: str = ""
    ) -> None:
        """Adds a table sortable by clicking its headers; numbers sort numerically."""
        for index, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(f"row {index} has {len(row)} cells for {len(columns)} columns")
        header = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
        body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        identifier = f' id="{html.escape(table_id)}"' if table_id else ""
        self._parts.append(
            f'<table class="sortable"{identifier}><thead><tr>{header}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>"
        )

    def write(self) -> Path:
        """Writes the page (``index.html`` by default) and returns its path."""
        page = (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(self._parts)
            + f"\n<script>{_SORT_SCRIPT}</script></body></html>\n"
        )
        path = self.folder / self.page
        path.write_text(page, encoding="utf-8")
        return path
