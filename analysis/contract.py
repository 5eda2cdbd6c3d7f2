"""The data contract: branch names, units, conventions and fill values (docs/physics.md sec. 1).

Standard NanoAOD collections keep their NanoAOD names and meanings. The soft-track search
needs more than NanoAOD has; the extension below is defined here and nowhere else. The toy
generator writes exactly these branches and every reader imports the names from here.

Units: GeV, cm, radians. Flat ``Events`` tree; jagged collections have an ``n<Collection>``
counter.

Track helix convention
----------------------
A track is a helix (thesis eq. 3.1) given by charge q, pT, phi0, lambda (dip angle,
tan(lambda) = sinh(eta)) and its reference point (refX, refY, refZ): the point of closest
approach (PCA) of the helix to the beam line (x = y = 0). At the reference point

    x(t) = x0 + R (sin(phi0) - sin(phi0 - t))
    y(t) = y0 + R (cos(phi0 - t) - cos(phi0))
    z(t) = z0 + R tan(lambda) t,        R = pT R1 / q (signed), R1 = 87.78 cm at 3.8 T

The five helix parameters at the reference point, in this order, are

    0 qoverpt  q / pT                               [1/GeV]
    1 lambda   dip angle                            [rad]
    2 phi      azimuth phi0 of the momentum         [rad]
    3 d0       signed transverse position of the reference point,
               d0 = -refX sin(phi0) + refY cos(phi0) [cm]
    4 z0       refZ                                  [cm]

The magnetic field points along +z: positive tracks curve clockwise (phi decreasing with
time). The reference point is the PCA to the beam line on the same turn as the production
point (|t| <= pi from it; every turn has one, shifted in z by 2 pi R tan(lambda)), so it is
redundant with (phi, d0): refX = -d0 sin(phi), refY = d0 cos(phi). A variation of phi or d0
moves the reference point with the along-track offset held fixed (analysis.helix).
``Track_dxy`` and ``Track_dz`` follow CMS ``reco::Track::dxy(v)``/``dz(v)``:
dxy = -(x0 - vx) sin(phi) + (y0 - vy) cos(phi),
dz = (z0 - vz) - [(x0 - vx) cos(phi) + (y0 - vy) sin(phi)] tan(lambda).

Their 5x5 covariance is stored as the 15 branches ``Track_covIJ`` (I <= J), upper triangle
in row-major order: cov00 cov01 cov02 cov03 cov04 cov11 cov12 cov13 cov14 cov22 cov23
cov24 cov33 cov34 cov44 (see :data:`TRACK_COV_BRANCHES`, :func:`cov_index`).

Vertex indices
--------------
``Track_vtxIdx`` indexes the combined vertex list: 0 is the leading primary vertex ``PV``,
k >= 1 is ``OtherPV[k - 1]`` (a pileup vertex), -1 means no associated vertex.
``Track_svIdx`` indexes ``SV`` (-1: none); ``Track_genPartIdx`` indexes ``GenPart`` (-1: none,
always -1 in data). Vertex covariances are the 6 branches ``covXX covXY covXZ covYY covYZ
covZZ`` (cm^2) of ``PV``, ``OtherPV`` and ``SV``.
"""

from __future__ import annotations

# --- Track extension -------------------------------------------------------------------
HELIX_PARAMETERS: tuple[str, ...] = ("qoverpt", "lambda", "phi", "d0", "z0")
N_HELIX = len(HELIX_PARAMETERS)

#: (i, j) pairs of the stored upper triangle, in storage order
TRACK_COV_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i in range(N_HELIX) for j in range(i, N_HELIX)
)
TRACK_COV_BRANCHES: tuple[str, ...] = tuple(f"cov{i}{j}" for i, j in TRACK_COV_PAIRS)


def cov_index(i: int, j: int) -> int:
    """Position of covariance element (i, j) of the helix parameters in TRACK_COV_BRANCHES."""
    if i > j:
        i, j = j, i
    return TRACK_COV_PAIRS.index((i, j))


VERTEX_COV_BRANCHES: tuple[str, ...] = ("covXX", "covXY", "covXZ", "covYY", "covYZ", "covZZ")

#: field -> (dtype, unit, description); written by the generator as Track_<field>
TRACK_FIELDS: dict[str, tuple[str, str, str]] = {
    "pt": ("float32", "GeV", "transverse momentum"),
    "eta": ("float32", "", "pseudorapidity"),
    "phi": ("float32", "rad", "azimuth phi0 of the momentum at the reference point"),
    "charge": ("int32", "e", "charge, +-1"),
    "refX": ("float32", "cm", "reference point: PCA of the helix to the beam line"),
    "refY": ("float32", "cm", "reference point y"),
    "refZ": ("float32", "cm", "reference point z"),
    "dxy": ("float32", "cm", "straight-line transverse IP w.r.t. the leading PV (signed)"),
    "dz": ("float32", "cm", "straight-line longitudinal IP w.r.t. the leading PV (signed)"),
    "dxyErr": ("float32", "cm", "uncertainty of dxy (track and PV)"),
    "dzErr": ("float32", "cm", "uncertainty of dz (track and PV)"),
    **{b: ("float32", "mixed", "helix-parameter covariance element") for b in TRACK_COV_BRANCHES},
    "highPurity": ("bool", "", "high-purity quality flag"),
    "isPFcand": ("bool", "", "the track is a particle-flow candidate"),
    "nValidHits": ("int32", "", "number of valid hits"),
    "chi2ndof": ("float32", "", "chi2 / ndof of the track fit"),
    "vtxIdx": ("int32", "", "associated vertex: 0 = PV, k>=1 = OtherPV[k-1], -1 = none"),
    "svIdx": ("int32", "", "index into SV, -1 = none"),
    "pfIso03": ("float32", "GeV", "absolute PF isolation in a cone DeltaR < 0.3"),
    "genPartIdx": ("int32", "", "truth link into GenPart, -1 = none (simulation only)"),
    "genOrigin": ("int8", "", "generator truth of the track's origin (simulation only): see TRACK_ORIGINS"),
}
TRACK_SIM_ONLY: tuple[str, ...] = ("genPartIdx", "genOrigin")
#: values of Track_genOrigin: the primary interaction (incl. the hard process and its
#: decays), a pileup interaction (no GenPart entry), or a spurious (fake) track
TRACK_ORIGINS: dict[str, int] = {"primary": 0, "pileup": 1, "spurious": 2}

PFCAND_FIELDS: dict[str, tuple[str, str, str]] = {
    "pt": ("float32", "GeV", "transverse momentum"),
    "eta": ("float32", "", "pseudorapidity"),
    "phi": ("float32", "rad", "azimuth"),
    "charge": ("int32", "e", "charge"),
    "pdgId": ("int32", "", "PF particle type as a PDG id (211, 130, 22, 11, 13)"),
    "fromPV": ("int32", "", "PV association quality as in PackedCandidate: 0-3 (3 = used in PV fit)"),
    "trkIdx": ("int32", "", "index into Track for charged candidates, -1 otherwise"),
}

VERTEX_FIELDS: dict[str, tuple[str, str, str]] = {
    "x": ("float32", "cm", "position x"),
    "y": ("float32", "cm", "position y"),
    "z": ("float32", "cm", "position z"),
    **{b: ("float32", "cm^2", "position covariance") for b in VERTEX_COV_BRANCHES},
}

GENPART_EXTRA_FIELDS: dict[str, tuple[str, str, str]] = {
    "vx": ("float32", "cm", "production vertex x"),
    "vy": ("float32", "cm", "production vertex y"),
    "vz": ("float32", "cm", "production vertex z"),
}

# --- Fill values for undefined quantities ----------------------------------------------
#: a log10 of a quantity that is undefined (no such vertex) or zero
FILL_LOG10 = -6.0
#: a log10 feature w.r.t. a vertex that does not exist (no pileup / associated vertex)
FILL_LOG10_UNDEFINED = -10.0
#: a DeltaR to an object that does not exist
FILL_DR = 10.0
#: a distance between vertices when one is missing
FILL_DISTANCE = -1.0
#: index of a missing object
FILL_INDEX = -1

# --- PDG ids ---------------------------------------------------------------------------
PDG_CHARGINO = 1000024
PDG_NEUTRALINO1 = 1000022
PDG_NEUTRALINO2 = 1000023
PDG_PION = 211
PDG_KAON = 321
PDG_PROTON = 2212
PDG_ELECTRON = 11
PDG_MUON = 13
PDG_TAU = 15
PDG_PHOTON = 22
PDG_Z = 23
PDG_W = 24
PDG_TOP = 6
PDG_NU = (12, 14, 16)

# --- Triggers of the three streams -----------------------------------------------------
HLT_MET = "PFMETNoMu120_PFMHTNoMu120_IDTight"
HLT_SINGLEMUON = "IsoMu24"
HLT_JETHT = "PFHT1050"

#: branches every file must have for NanoAODSchema
EVENT_ID_BRANCHES: tuple[str, ...] = ("run", "luminosityBlock", "event")
