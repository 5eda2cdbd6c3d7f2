"""Toy parton showers of the semi-visible-jet sample (docs/svj.md, "The toy shower").

Two angular-ordered showers in the soft-collinear approximation, one numba kernel over all
events:

* QCD: primary emissions of a quark (C_F = 4/3) or gluon (C_A = 3) off the harder branch with
  the density dP = (2 C alpha_s(k_t) / pi) (d theta / theta) (dz / z) times the splitting
  function's hard-collinear factor, z <= 1/2 the softer branch's momentum fraction, k_t =
  z E theta above ``kt_min``, one-loop running alpha_s frozen below ``kt_min``, each emitted
  gluon showering again below the angle it was emitted at (angular ordering). This is what
  fills a Lund plane uniformly in (ln 1/Delta, ln k_t) up to the running coupling (Dreyer,
  Salam, Soyez, "The Lund jet plane", JHEP 12 (2018) 064, sec. 2).
* Dark: the same in an SU(2) dark sector (C_F = 3/4, C_A = 2) with a fixed, larger coupling,
  a wider first angle and a cutoff at the dark confinement scale; each final dark parton
  becomes a dark hadron of mass ``m_dark``, which is stable (invisible) with probability
  ``r_inv`` and otherwise decays isotropically to a visible quark pair that showers like QCD
  below the pair's opening angle (seed 003, "Hidden Valley Scenarios - A Benchmark Model":
  m_chi = 10 GeV, m_dark = 20 GeV, prompt decays).

Every emission conserves three-momentum (the emitter recoils), so the visible plus invisible
momentum of a shower is that of its parton exactly; every final QCD parton becomes one
fragments into a few collinear massless hadrons (charged with probability 2/3) sharing its
momentum. A per-parton detector response scales the
visible hadrons of that parton (``response``), so the reconstructed p_T^miss of an event is
known before showering: the invisible momentum plus sum (1 - r_k) p_k over partons k.
"""

# numba kernels draw from numba's own np.random state (the legacy API is the one njit supports),
# seeded at the start of each kernel call:
# ruff: noqa: NPY002
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: kinds of hard particles handed to the shower
QUARK, GLUON, DARK_QUARK, DARK_GLUON, LEPTON, NEUTRINO, PHOTON = 0, 1, 2, 3, 4, 5, 6
#: PDG ids written for the toy hadrons (charged pion, photon / neutral hadron) and dark hadrons
PDG_PION, PDG_PHOTON, PDG_NEUTRAL_HADRON = 211, 22, 130
PDG_DARK_HADRON_STABLE, PDG_DARK_HADRON_UNSTABLE = 4900211, 4900111

#: hadron flags of the output (bit field): from a dark-hadron decay, a lepton
FROM_DARK = 1
IS_LEPTON = 2


@njit(cache=True)
def _alpha_s(kt, lambda_qcd, b0, kt_freeze):
    k = max(kt, kt_freeze)
    return 1.0 / (b0 * math.log(k * k / (lambda_qcd * lambda_qcd)))


@njit(cache=True)
def _orthonormal(px, py, pz):
    """Two unit vectors orthogonal to (px, py, pz) and to each other."""
    p = math.sqrt(px * px + py * py + pz * pz)
    nx, ny, nz = px / p, py / p, pz / p
    if abs(nx) < 0.9:
        ax, ay, az = 1.0, 0.0, 0.0
    else:
        ax, ay, az = 0.0, 1.0, 0.0
    # e1 = a x n normalised, e2 = n x e1
    e1x, e1y, e1z = ay * nz - az * ny, az * nx - ax * nz, ax * ny - ay * nx
    l1 = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    e1x, e1y, e1z = e1x / l1, e1y / l1, e1z / l1
    e2x, e2y, e2z = ny * e1z - nz * e1y, nz * e1x - nx * e1z, nx * e1y - ny * e1x
    return nx, ny, nz, e1x, e1y, e1z, e2x, e2y, e2z


@njit(cache=True)
def _direction_at(px, py, pz, theta, azimuth):
    """Unit vector at angle theta from (px, py, pz), at the given azimuth around it."""
    nx, ny, nz, e1x, e1y, e1z, e2x, e2y, e2z = _orthonormal(px, py, pz)
    c, s = math.cos(theta), math.sin(theta)
    ca, sa = math.cos(azimuth), math.sin(azimuth)
    return (c * nx + s * (ca * e1x + sa * e2x), c * ny + s * (ca * e1y + sa * e2y),
            c * nz + s * (ca * e1z + sa * e2z))


@njit(cache=True)
def shower_events(offsets, hard_p, hard_kind, hard_response, params, seed, capacity):
    """Shower the hard particles of every event.

    Parameters
    ----------
    offsets : int64 (n_events + 1,) -- hard particles of event i are offsets[i]:offsets[i+1].
    hard_p : float64 (n_hard, 3) -- their momenta (GeV).
    hard_kind : int64 (n_hard,) -- QUARK, GLUON, DARK_QUARK, LEPTON, NEUTRINO, PHOTON.
    hard_response : float64 (n_hard,) -- detector response of the particle's visible hadrons.
    params : float64 array -- see :data:`analysis.toymc.svj.ShowerParams` (order fixed there).
    seed : int -- numba's random state is seeded with it (the output depends only on it).
    capacity : int -- size of the output buffers (the call returns n_out = -1 if exceeded).

    Returns
    -------
    n_out, counts (n_events,), out_p (capacity, 3) reconstructed visible momenta, out_pdg,
    out_charge, out_flags, invisible (n_events, 2) true invisible px, py, n_dark (n_events, 2)
    stable and unstable dark hadrons, n_primary (n_hard,) accepted primary emissions.
    """
    np.random.seed(seed)
    (kt_min, theta_min, lambda_qcd, b0, theta_max_qcd, kt_min_dark, theta_max_dark, alpha_dark,
     m_dark, r_inv, charged_fraction, frag_multiplicity, frag_e0, frag_kt) = (
        params[0], params[1], params[2], params[3], params[4], params[5], params[6], params[7],
        params[8], params[9], params[10], params[11], params[12], params[13])
    alpha_max = _alpha_s(kt_min, lambda_qcd, b0, kt_min)
    n_events = offsets.size - 1
    counts = np.zeros(n_events, np.int64)
    out_p = np.zeros((capacity, 3))
    out_pdg = np.zeros(capacity, np.int64)
    out_charge = np.zeros(capacity, np.int64)
    out_flags = np.zeros(capacity, np.int64)
    invisible = np.zeros((n_events, 2))
    n_dark = np.zeros((n_events, 2), np.int64)
    n_primary = np.zeros(hard_kind.size, np.int64)
    n_out = 0
    # stack: px, py, pz, theta_max, kind, response, flags, hard index (-1: not primary)
    stack = np.zeros((4096, 8))
    for ev in range(n_events):
        top = 0
        for h in range(offsets[ev], offsets[ev + 1]):
            stack[top, 0], stack[top, 1], stack[top, 2] = hard_p[h, 0], hard_p[h, 1], hard_p[h, 2]
            kind = hard_kind[h]
            stack[top, 3] = theta_max_dark if kind == DARK_QUARK else theta_max_qcd
            stack[top, 4] = kind
            stack[top, 5] = hard_response[h]
            stack[top, 6] = IS_LEPTON if kind == LEPTON else 0
            stack[top, 7] = h
            top += 1
        while top > 0:
            top -= 1
            px, py, pz = stack[top, 0], stack[top, 1], stack[top, 2]
            theta, kind, resp = stack[top, 3], int(stack[top, 4]), stack[top, 5]
            flags, hard_index = int(stack[top, 6]), int(stack[top, 7])
            if kind == NEUTRINO:
                invisible[ev, 0] += px
                invisible[ev, 1] += py
                continue
            if kind == LEPTON or kind == PHOTON:
                if n_out >= capacity:
                    return -1, counts, out_p, out_pdg, out_charge, out_flags, invisible, n_dark, n_primary
                out_p[n_out, 0], out_p[n_out, 1], out_p[n_out, 2] = resp * px, resp * py, resp * pz
                if kind == LEPTON:
                    q = 1 if np.random.random() < 0.5 else -1
                    out_pdg[n_out] = -13 * q
                    out_charge[n_out] = q
                else:
                    out_pdg[n_out] = PDG_PHOTON
                out_flags[n_out] = flags
                n_out += 1
                counts[ev] += 1
                continue
            dark = kind == DARK_QUARK or kind == DARK_GLUON
            if dark:
                colour = 0.75 if kind == DARK_QUARK else 2.0
                cutoff = kt_min_dark
                rho_max = 2.0 * colour * alpha_dark / math.pi
            else:
                colour = 4.0 / 3.0 if kind == QUARK else 3.0
                cutoff = kt_min
                rho_max = 2.0 * colour * alpha_max / math.pi
            e0 = math.sqrt(px * px + py * py + pz * pz)
            # over-estimate of the ln(1/z) range at any theta below the start (veto algorithm)
            lz_max = math.log(0.5 * e0 * theta / cutoff) if 0.5 * e0 * theta > cutoff else 0.0
            rate = rho_max * (lz_max + 1e-12)
            t = theta
            while lz_max > 0.0:
                t = t * math.exp(-np.random.exponential(1.0) / rate)
                e = math.sqrt(px * px + py * py + pz * pz)
                if t < theta_min or 0.5 * e * t < cutoff:
                    break
                z = 0.5 * math.exp(-np.random.random() * lz_max)
                kt = z * e * t
                if kt < cutoff:
                    continue
                # hard-collinear factor of the splitting function, normalised to 1 at z -> 0
                if kind == QUARK or kind == DARK_QUARK:
                    accept = 0.5 * (1.0 + (1.0 - z) * (1.0 - z))
                else:
                    accept = min(1.0, (1.0 - z * (1.0 - z)) ** 2 / (1.0 - z))
                if not dark:
                    accept *= _alpha_s(kt, lambda_qcd, b0, kt_min) / alpha_max
                if np.random.random() > accept:
                    continue
                dx, dy, dz = _direction_at(px, py, pz, t, 2.0 * math.pi * np.random.random())
                kx, ky, kz = z * e * dx, z * e * dy, z * e * dz
                px, py, pz = px - kx, py - ky, pz - kz
                if hard_index >= 0:
                    n_primary[hard_index] += 1
                if top >= stack.shape[0]:
                    return -1, counts, out_p, out_pdg, out_charge, out_flags, invisible, n_dark, n_primary
                stack[top, 0], stack[top, 1], stack[top, 2] = kx, ky, kz
                stack[top, 3] = t
                stack[top, 4] = DARK_GLUON if dark else GLUON
                stack[top, 5] = resp
                stack[top, 6] = flags
                stack[top, 7] = -1
                top += 1
            if dark:
                # the dark parton hadronizes into one dark hadron of mass m_dark (same momentum)
                p2 = px * px + py * py + pz * pz
                if np.random.random() < r_inv:
                    invisible[ev, 0] += px
                    invisible[ev, 1] += py
                    n_dark[ev, 0] += 1
                    continue
                n_dark[ev, 1] += 1
                energy = math.sqrt(p2 + m_dark * m_dark)
                bx, by, bz = px / energy, py / energy, pz / energy
                cos_t = 2.0 * np.random.random() - 1.0
                sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
                phi = 2.0 * math.pi * np.random.random()
                half = 0.5 * m_dark
                qx, qy, qz = half * sin_t * math.cos(phi), half * sin_t * math.sin(phi), half * cos_t
                b2 = bx * bx + by * by + bz * bz
                gamma = 1.0 / math.sqrt(1.0 - b2)
                lab = np.zeros((2, 3))
                for sign in (1.0, -1.0):
                    sx, sy, sz = sign * qx, sign * qy, sign * qz
                    bp = bx * sx + by * sy + bz * sz
                    f = (gamma - 1.0) * bp / b2 + gamma * half if b2 > 0 else half
                    i = 0 if sign > 0 else 1
                    lab[i, 0], lab[i, 1], lab[i, 2] = sx + f * bx, sy + f * by, sz + f * bz
                # the visible pair: 3-momenta sum to the hadron's (the boost conserves it)
                n0 = math.sqrt(lab[0, 0] ** 2 + lab[0, 1] ** 2 + lab[0, 2] ** 2)
                n1 = math.sqrt(lab[1, 0] ** 2 + lab[1, 1] ** 2 + lab[1, 2] ** 2)
                cos_open = (lab[0, 0] * lab[1, 0] + lab[0, 1] * lab[1, 1] + lab[0, 2] * lab[1, 2]) / (n0 * n1)
                opening = math.acos(max(-1.0, min(1.0, cos_open)))
                for i in range(2):
                    if top >= stack.shape[0]:
                        return -1, counts, out_p, out_pdg, out_charge, out_flags, invisible, n_dark, n_primary
                    stack[top, 0], stack[top, 1], stack[top, 2] = lab[i, 0], lab[i, 1], lab[i, 2]
                    stack[top, 3] = min(opening, theta_max_qcd)
                    stack[top, 4] = QUARK
                    stack[top, 5] = resp
                    stack[top, 6] = flags | FROM_DARK
                    stack[top, 7] = -1
                    top += 1
                continue
            # a final QCD parton fragments into massless hadrons (below the shower cutoff):
            # 1 + Poisson(c ln(1 + E / E0)) of them sharing its momentum (uniform spacings),
            # with Gaussian transverse kicks that sum to zero (three-momentum conserved)
            e = math.sqrt(px * px + py * py + pz * pz)
            n_h = 1 + np.random.poisson(frag_multiplicity * math.log(1.0 + e / frag_e0))
            if n_out + n_h > capacity:
                return -1, counts, out_p, out_pdg, out_charge, out_flags, invisible, n_dark, n_primary
            nx, ny, nz, e1x, e1y, e1z, e2x, e2y, e2z = _orthonormal(px, py, pz)
            cuts = np.sort(np.random.random(n_h - 1))
            k1 = np.random.normal(0.0, frag_kt, n_h)
            k2 = np.random.normal(0.0, frag_kt, n_h)
            k1 -= k1.mean()
            k2 -= k2.mean()
            for i in range(n_h):
                lo = 0.0 if i == 0 else cuts[i - 1]
                hi = 1.0 if i == n_h - 1 else cuts[i]
                x = hi - lo
                hx = x * px + k1[i] * e1x + k2[i] * e2x
                hy = x * py + k1[i] * e1y + k2[i] * e2y
                hz = x * pz + k1[i] * e1z + k2[i] * e2z
                out_p[n_out, 0], out_p[n_out, 1], out_p[n_out, 2] = resp * hx, resp * hy, resp * hz
                if np.random.random() < charged_fraction:
                    q = 1 if np.random.random() < 0.5 else -1
                    out_pdg[n_out] = PDG_PION * q
                    out_charge[n_out] = q
                else:
                    out_pdg[n_out] = PDG_PHOTON if np.random.random() < 0.5 else PDG_NEUTRAL_HADRON
                out_flags[n_out] = flags
                n_out += 1
                counts[ev] += 1
    return n_out, counts, out_p, out_pdg, out_charge, out_flags, invisible, n_dark, n_primary
