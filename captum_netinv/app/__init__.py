"""The main job built on the library: the demo's pipeline, its HTML report and neuron pages.

Nothing in :mod:`captum_netinv`'s methods imports from here.
"""

__all__: list[str] = []
