"""Models evaluated in processors and trained for them (ARCHITECTURE.md).

Core, for any analysis: :mod:`models.inference` (``OnnxModel``: an ONNX file and its JSON,
travelling by content to the workers; no torch), :mod:`models.export` (torch -> checked
ONNX graph and its JSON), :mod:`models.losses` (MMD, MDMM) and :mod:`models.metrics`
(numpy distances and scores). The torch parts need the ``[train]`` extra.

An analysis keeps its networks, training data, training loops, wrappers and shipped files in
``models/<analysis>/`` (the soft-track classifier and refiner: :mod:`models.softtrack`).
"""
