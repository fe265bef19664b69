"""Data-free distillation: a LeNet-5 student trained only on NetworkInversion's samples.

The teacher is the held-out protocol's LeNet-5 (benchmarks/common.py, full MNIST); the student a
fresh LeNet-5 trained by ``NetworkInversion.distill`` for ``--steps`` rounds. Prints the
student's accuracy on the 10,000 real MNIST test digits every ``--every`` rounds and the time.

    cd benchmarks && ../.venv/bin/python bench_distillation.py --steps 6000 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from common import frozen, load_mnist_npz, trained

from captum_netinv import NetworkInversion
from captum_netinv.examples.models import LeNet5, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--disagreement-weight", type=float, default=1.0)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    data = load_mnist_npz()
    teacher = frozen(trained("lenet5", 0))
    print(f"teacher test accuracy {accuracy(teacher, data['x_test'], data['y_test']):.4f}")
    torch.manual_seed(arguments.seed)
    student = LeNet5()
    inversion = NetworkInversion(teacher, input_shape=(1, 28, 28))
    started = time.perf_counter()
    for _ in range(arguments.steps // arguments.every):
        inversion.distill(
            student,
            steps=arguments.every,
            seed=arguments.seed + inversion.steps_trained,
            progress=False,
            disagreement_weight=arguments.disagreement_weight,
        )
        student.eval()
        seconds = time.perf_counter() - started
        test = accuracy(student, data["x_test"], data["y_test"])
        print(f"rounds {inversion.steps_trained}: {seconds:.0f} s, student test {test:.4f}")


if __name__ == "__main__":
    main()
