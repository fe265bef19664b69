"""Sphinx configuration of the captum_netinv documentation.

Builds offline: intersphinx reads inventories written locally from ``external_objects.py``, and the
tutorials are rendered with the outputs stored in the notebooks (they are executed by
``make tutorials``, never by the docs build).
"""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT))

from external_objects import intersphinx_mapping as local_intersphinx_mapping  # noqa: E402

project = "captum_netinv"
author = "captum_netinv developers"
copyright = "2026, captum_netinv developers"
try:
    release = installed_version("captum_netinv")
except PackageNotFoundError:  # building from a checkout that is not pip-installed
    import tomllib

    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "external_objects.py"]
root_doc = "index"

# Napoleon reads Captum's Google-style docstrings (Args: / Returns:); "Examples::" stays a literal
# block, exactly as in Captum's own documentation.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = True
napoleon_type_aliases = {
    "Tensor": "torch.Tensor",
    "nn.Module": "torch.nn.Module",
    "torch.nn.Module": "torch.nn.Module",
    "ndarray": "numpy.ndarray",
    "Concept": "captum.concept.Concept",
    "Explanations": "captum_netinv.Explanations",
    "Formula": "captum_netinv.Formula",
    "Callable": "collections.abc.Callable",
    "Mapping": "collections.abc.Mapping",
}

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type hints are rendered in the parameter and return descriptions, beside the docstring text.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
autodoc_class_signature = "separated"

# Notebooks are committed with the outputs of a real execution; `make tutorials` executes them.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

intersphinx_mapping = local_intersphinx_mapping(DOCS / "_build" / "inventories")
intersphinx_timeout = 1
intersphinx_cache_limit = -1

html_theme = "alabaster"
html_title = f"captum_netinv {release}"
html_theme_options = {
    "description": "Network Inversion and INVERT neuron labeling for Captum",
    "fixed_sidebar": True,
    "show_relbars": True,
    "page_width": "1180px",
    "sidebar_width": "240px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}


def copy_tutorials() -> None:
    r"""Mirrors ``tutorials/*.ipynb`` into ``docs/tutorials/`` so Sphinx renders them in place."""
    target = DOCS / "tutorials"
    for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
        copy = target / notebook.name
        if not copy.exists() or copy.read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, copy)
    for stale in target.glob("*.ipynb"):
        if not (ROOT / "tutorials" / stale.name).exists():
            stale.unlink()


copy_tutorials()
