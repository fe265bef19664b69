"""The figure of docs/methods/network_inversion.md: matrix conditioning, old and new, per class.

``python benchmarks/plot_matrix_conditioning.py`` writes docs/_static/matrix_conditioning.png.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from captum_netinv.inversion.conditioning import (  # noqa: E402
    ConditioningBatch,
    draw_conditioning,
    hot_matrices,
    matrix_channel,
    soft_hot_matrices,
)
from captum_netinv.inversion.generator import ConditionedGenerator  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "_static" / "matrix_conditioning.png"
CLASSES = (0, 3, 7)


def main() -> None:
    generator = ConditionedGenerator((1, 28, 28), 10, conditioning="matrix")
    size = tuple(generator.get_buffer("class_codes").shape[1:])
    rng = torch.Generator().manual_seed(0)
    batch = draw_conditioning("matrix", torch.tensor(CLASSES), 10, rng=rng)
    assert batch.vectors is not None
    one_hot = ConditioningBatch(torch.tensor(CLASSES), vectors=torch.eye(10)[list(CLASSES)])
    rows = {
        "hot matrix (10x10)": hot_matrices(torch.tensor(CLASSES), 10)[:, 0],
        "soft hot matrix of a draw": soft_hot_matrices(batch.vectors)[:, 0],
        f"joined map {size[0]}x{size[1]} (that draw)": generator.class_matrix(batch, size)[:, 0],
        "class code (one-hot)": generator.class_matrix(one_hot, size)[:, 0],
        "old: hot, max-pooled to 4x4": matrix_channel(
            hot_matrices(torch.tensor(CLASSES), 10), (4, 4)
        )[:, 0],
    }
    figure, axes = plt.subplots(len(rows), len(CLASSES), figsize=(6.4, 10.5))
    for row, (title, maps) in enumerate(rows.items()):
        for column, target in enumerate(CLASSES):
            axis = axes[row, column]
            axis.imshow(maps[column].detach(), cmap="viridis")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"class {target}")
            if column == 0:
                axis.set_ylabel(title, fontsize=8)
    figure.suptitle("Matrix conditioning, K = 10, 28x28 inputs", fontsize=10)
    figure.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
