"""The semi-visible-jet search's networks (docs/svj.md): LundNet (:mod:`.lundnet`) and the
ABCDisCoTEC event tagger (:mod:`.abcdiscotec`), trained in torch (extra ``[train]``), exported
to ONNX with their JSON beside them (:mod:`.export`) and evaluated through :mod:`.inference`
(onnxruntime only). The shipped models are ``lundnet.onnx`` and ``abcdiscotec.onnx`` here."""
