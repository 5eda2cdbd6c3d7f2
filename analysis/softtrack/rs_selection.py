"""The soft-track analysis' selections of R&S events: the seed-004 pre-selection and baseline
(seed 004 sec. 3.2), the closure region of the R&S prediction."""

from __future__ import annotations

import numpy as np

from analysis.softtrack.config import RS_BASELINE_MHT, RS_PRESELECTION_MHT, RS_PRESELECTION_MIN_JETS


def seed004_steps(o) -> list[tuple[str, np.ndarray]]:
    """Ordered (name, mask) steps of the seed-004 pre-selection (sec. 3.2.1) and baseline
    (sec. 3.2.2) on :class:`analysis.softtrack.selection.EventObservables`: hard MHT > 120 GeV,
    >= 1 jet (pT > 30, |eta| < 2.4), no b-tagged jet, no electron or muon, HT > hard MHT, then
    hard MHT > 250 GeV. The closure region of issue 7."""
    return [
        ("pre_mht", o.mht > RS_PRESELECTION_MHT),
        ("pre_n_jets", o.n_jets >= RS_PRESELECTION_MIN_JETS),
        ("pre_btag_veto", o.n_btags == 0),
        ("pre_lepton_veto", (o.n_muons + o.n_electrons) == 0),
        ("pre_ht_over_mht", o.ht > o.mht),
        ("baseline_mht", o.mht > RS_BASELINE_MHT),
    ]
