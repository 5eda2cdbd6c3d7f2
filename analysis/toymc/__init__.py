"""The toy detector: a generator of NanoAOD-like events with known truth and injected data/simulation differences (analysis/toymc/truth.py). A data source for commands, tests and benchmarks only."""
