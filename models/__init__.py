"""Models of the soft-track search (docs/physics.md sec. 4 and 7): definitions, training, export, inference.

Inference (no torch): :mod:`models.inference` (``ClassifierModel``, ``RefinerModel``,
``logit``) and the numpy metrics of :mod:`models.metrics`. Training path (extra
``[train]``: torch, onnx): :mod:`models.classifier`, :mod:`models.refiner`,
:mod:`models.losses`, :mod:`models.training`, :mod:`models.export`; training inputs are
built by :mod:`models.data`. Shipped files: ``refiner.onnx`` + ``refiner.json`` (and
``classifier.onnx`` + ``.json`` once trained on the real feature table).
"""
