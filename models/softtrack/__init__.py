"""Models of the soft-track search (docs/physics.md sec. 4 and 7).

Inference (no torch): :mod:`models.softtrack.inference` (``ClassifierModel``,
``RefinerModel``, ``logit``). Training path (extra ``[train]``: torch, onnx):
:mod:`models.softtrack.classifier`, :mod:`models.softtrack.refiner`,
:mod:`models.softtrack.training`, :mod:`models.softtrack.export`; training inputs are built by
:mod:`models.softtrack.data`. Shipped files: ``classifier.onnx`` and ``refiner.onnx``, each
with its JSON description.
"""
