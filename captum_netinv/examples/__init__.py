"""Data sets and reference models for the demo, the tutorials and the tests.

Package-shipped MNIST digits and their human concepts, a LeNet-5 and an MLP with their training
loop, and a planted watermark shortcut; no downloads.
"""

__all__: list[str] = []
