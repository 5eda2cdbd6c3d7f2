"""The Z -> mu mu example's configuration: cuts as validated data, overridable by --config."""

from __future__ import annotations

from analysis.configuration import AnalysisConfig, ConfigModel


class MuonCuts(ConfigModel):
    """Muons entering the pair: pT (GeV), |eta|, relative PF isolation (cone 0.3) and an ID
    flag of NanoAOD (``Muon_<id>``; empty: no ID requirement)."""

    pt: float = 20.0
    leading_pt: float = 25.0
    eta: float = 2.4
    rel_iso: float = 0.15
    id: str = "mediumId"


class ZPeakConfig(AnalysisConfig):
    """Two opposite-sign isolated muons with their invariant mass in a window around m_Z."""

    muons: MuonCuts = MuonCuts()
    mass_low: float = 60.0
    mass_high: float = 120.0
