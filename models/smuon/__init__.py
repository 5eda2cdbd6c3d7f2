"""The smuon search's networks (seed 002 sec. III): the torch module and its training
(``[train]`` extra), the ONNX export, and the ONNX Runtime wrapper the processor evaluates."""
