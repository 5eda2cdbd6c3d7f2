"""Physical constants and the CMS Run-2 data-taking periods: facts every analysis shares.

Masses and widths are the PDG values; the eras' integrated luminosities are the CMS Run-2
legacy values (36.3, 41.5 and 59.8 fb^-1, 138 fb^-1 in all; CMS summary sec. 2). An
analysis takes its eras and luminosities from here as defaults of its own configuration.
"""

from __future__ import annotations

# --- Eras and luminosity (CMS Run 2; docs/physics.md sec. 2) ------------------------------
ERAS: tuple[str, ...] = ("2016", "2017", "2018")
LUMI_FB: dict[str, float] = {"2016": 36.3, "2017": 41.5, "2018": 59.8}
LUMI_UNCERTAINTY = 0.016

# --- Detector (docs/physics.md sec. 3) -----------------------------------------------------
BFIELD_TESLA = 3.8
#: Radius (cm) of a track with pT = 1 GeV and |q| = 1e in 3.8 T: 1 GeV / (e c 3.8 T).
R1_CM = 1.0e11 / (299792458.0 * BFIELD_TESLA)  # = 87.78 cm

# --- Particle masses and widths (GeV, PDG) ------------------------------------------------
PION_MASS = 0.13957039
MUON_MASS = 0.1056583755
TAU_MASS = 1.77686
Z_MASS = 91.1876
Z_WIDTH = 2.4952
W_MASS = 80.379
W_WIDTH = 2.085
TOP_MASS = 172.5

# --- Detector conditions (CMS summary sec. 3) ------------------------------------------------
#: HEM 15/16 failure (2018 only): the (eta, phi) region without hadron calorimeter response
HEM_ETA: tuple[float, float] = (-3.2, -1.2)
HEM_PHI: tuple[float, float] = (-1.77, -0.67)
HEM_ERAS: tuple[str, ...] = ("2018",)
#: the recommended noise filters (Flag_ branches); ecalBadCalib is not used in 2016
NOISE_FILTERS: tuple[str, ...] = (
    "globalSuperTightHalo2016Filter",
    "EcalDeadCellTriggerPrimitiveFilter",
    "BadPFMuonDzFilter",
    "ecalBadCalibFilter",
)
NOISE_FILTERS_SKIP: dict[str, tuple[str, ...]] = {"2016": ("ecalBadCalibFilter",)}

# --- Pileup -----------------------------------------------------------------------------
#: pileup weights: true-interaction bins (width 1) and the relative up/down variation of
#: the pseudo-data profile scale (the CMS minimum-bias cross section uncertainty, 4.6%)
PILEUP_NTRUE_MAX = 100
PILEUP_SCALE_UNCERTAINTY = 0.046
