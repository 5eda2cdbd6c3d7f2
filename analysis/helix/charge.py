"""Electric charge of generator particles from their PDG id (the matching's gen charge)."""

from __future__ import annotations

import numpy as np

from analysis.contract import PDG_CHARGINO

#: three times the charge of the quarks d u s c b t (PDG codes 1-6)
_QUARK_THREE_CHARGE = np.array([0, -1, 2, -1, 2, -1, 2], dtype=np.int64)
#: three times the charge of the fundamental particles |pdgId| < 100 (others 0)
_FUNDAMENTAL_THREE_CHARGE = np.zeros(100, dtype=np.int64)
_FUNDAMENTAL_THREE_CHARGE[1:7] = _QUARK_THREE_CHARGE[1:]
_FUNDAMENTAL_THREE_CHARGE[[11, 13, 15, 17]] = -3
_FUNDAMENTAL_THREE_CHARGE[[24, 34, 37]] = 3
#: SUSY codes 10000xx / 20000xx whose charge is not that of the SM partner xx
_SUSY_CHARGED_GAUGINOS = (PDG_CHARGINO, 1000037)


def gen_charge(pdg_id: np.ndarray) -> np.ndarray:
    """Electric charge (e) of generator particles from their PDG id (flat arrays).

    Quarks, leptons, W, H+-; SUSY partners carry the charge of their SM partner, charginos
    (1000024, 1000037) +1; mesons and baryons from the quark digits of the PDG numbering
    scheme (as HepPDT). Returned as float64 (fractional for quarks).
    """
    pid = np.asarray(pdg_id, dtype=np.int64)
    apid = np.abs(pid)
    sign = np.sign(pid)
    three = np.zeros(apid.shape, dtype=np.int64)
    fund = apid < 100
    three[fund] = _FUNDAMENTAL_THREE_CHARGE[apid[fund]]
    susy = (apid >= 1000000) & (apid < 3000000)
    base = apid % 1000000
    susy_fund = susy & (base < 100)
    three[susy_fund] = _FUNDAMENTAL_THREE_CHARGE[base[susy_fund]]
    three[np.isin(apid, _SUSY_CHARGED_GAUGINOS)] = 3
    hadron = (apid >= 100) & ~susy & (apid < 1000000)
    nq1 = (apid // 1000) % 10
    nq2 = (apid // 100) % 10
    nq3 = (apid // 10) % 10
    q1 = _QUARK_THREE_CHARGE[np.minimum(nq1, 6)]
    q2 = _QUARK_THREE_CHARGE[np.minimum(nq2, 6)]
    q3 = _QUARK_THREE_CHARGE[np.minimum(nq3, 6)]
    meson = hadron & (nq1 == 0)
    down_type_first = (nq2 == 3) | (nq2 == 5)
    three_meson = np.where(down_type_first, q3 - q2, q2 - q3)
    three[meson] = three_meson[meson]
    baryon = hadron & (nq1 != 0)
    three[baryon] = (q1 + q2 + q3)[baryon]
    return sign * three / 3.0
