"""Branch names the semi-visible-jet analysis reads (PFNano layout; docs/svj.md, "Branches")."""

from __future__ import annotations

#: AK8 jets and the cross-reference of their constituents (PFNano: FatJetPFCands_jetIdx,
#: FatJetPFCands_pFCandsIdx, both indices local to the event)
FATJET = "FatJet"
FATJET_PFCANDS = "FatJetPFCands"
FATJET_PFCANDS_JET = "jetIdx"
FATJET_PFCANDS_CAND = "pFCandsIdx"
PFCANDS = "PFCands"
#: AK4 jets (the scouting H_T) and p_T^miss
JET = "Jet"
MET = "MET"
#: float branches read (must be finite)
FINITE_INPUTS = ("genWeight", "MET_pt", "MET_phi", "FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass",
                 "Jet_pt", "Jet_eta", "PFCands_pt", "PFCands_eta", "PFCands_phi")
