"""Data-free distillation: a LeNet-5 student trained only on NetworkInversion's samples.

The teacher is the held-out protocol's LeNet-5 (benchmarks/common.py, full MNIST); the student a
fresh LeNet-5 trained by one ``NetworkInversion.distill`` call (one Adam state throughout) for at
most ``--steps`` rounds or ``--minutes`` of training. Prints the student's accuracy on the 10,000
real MNIST test digits every ``--every`` rounds and the training time (the test reads are off the
clock).

    cd benchmarks && ../.venv/bin/python bench_distillation.py --minutes 10 --threads 2
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
    parser.add_argument("--steps", type=int, default=20000, help="most rounds")
    parser.add_argument("--minutes", type=float, default=10.0, help="stop after this training time")
    parser.add_argument("--every", type=int, default=1000, help="rounds between test reads")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--student-steps", type=int, default=1)
    parser.add_argument("--disagreement-weight", type=float, default=1.0)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    data = load_mnist_npz()
    teacher = frozen(trained("lenet5", 0))
    print(f"teacher test accuracy {accuracy(teacher, data['x_test'], data['y_test']):.4f}")
    torch.manual_seed(arguments.seed)
    student = LeNet5()
    inversion = NetworkInversion(teacher, input_shape=(1, 28, 28))
    clock = {"training": 0.0, "since": time.perf_counter()}

    def read_test(step: int, values: dict[str, float]) -> bool:
        """Every ``--every`` rounds: the student's test accuracy, off the training clock."""
        if step % arguments.every:
            return False
        clock["training"] += time.perf_counter() - clock["since"]
        was_training = student.training
        test = accuracy(student.eval(), data["x_test"], data["y_test"])
        student.train(was_training)
        print(f"rounds {step}: {clock['training']:.0f} s, student test {test:.4f}", flush=True)
        clock["since"] = time.perf_counter()
        return clock["training"] > 60 * arguments.minutes

    inversion.distill(
        student,
        steps=arguments.steps,
        seed=arguments.seed,
        batch_size=arguments.batch_size,
        student_steps=arguments.student_steps,
        progress=False,
        disagreement_weight=arguments.disagreement_weight,
        callback=read_test,
    )


if __name__ == "__main__":
    main()
