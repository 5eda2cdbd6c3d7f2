"""Signal region and single-lepton validation region (docs/physics.md sec. 2, 4)."""

from __future__ import annotations

from .region import RegionProcessor


class SignalProcessor(RegionProcessor):
    """Noise filters, MET trigger, HEM veto and the baseline; candidate tracks and, with a
    scorer, the max logit per Delta m, the category and the 12 signal regions."""

    name = "signal"
    stream = "met"
    n_leptons = 0


class SingleLeptonProcessor(RegionProcessor):
    """The baseline with exactly one isolated electron or muon instead of none."""

    name = "single_lepton"
    stream = "met"
    n_leptons = 1
