"""The smuon search's sensitivity (analysis/smuon/statistics.py, processors/smuon/sensitivity.py;
docs/smuon.md sec. 6) against pyhf and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.smuon.statistics import (
    counting_workspace,
    exclusion_contour,
    expected_s95,
    significance,
)
from analysis.stats.limits import cls_pyhf, upper_limit


@pytest.mark.parametrize("b, unc", [(0.5, 0.0), (12.0, 0.0), (12.0, 0.2), (400.0, 0.2)])
def test_s95_is_pyhfs_expected_limit(b, unc):
    """At S95 pyhf's own hypotest gives the expected CLs = 0.05."""
    s95 = expected_s95(b, unc)["median"]
    _, expected = cls_pyhf(counting_workspace(s95, b, unc), 1.0)
    assert expected[2] == pytest.approx(0.05, abs=2e-4)


def test_mu_up_scales_as_s95_over_s():
    """Without a signal uncertainty the limit on mu of a point is S95 / s: the fit of the
    point's own workspace agrees."""
    b, unc = 35.0, 0.2
    s95 = expected_s95(b, unc)["median"]
    for s in (3.0, 40.0, 400.0):
        own = upper_limit(counting_workspace(s, b, unc), 0.05, "smuon").expected[2]
        assert own == pytest.approx(s95 / s, rel=2e-3)


def test_known_background_limit_in_the_large_b_limit():
    """For b >> 1 and no uncertainty the median expected CLs is 2 (1 - Phi(sqrt(q_A))) with
    sqrt(q_A) = S / sqrt(b): CLs = 0.05 at S95 = 1.96 sqrt(b)."""
    b = 1.0e5
    assert expected_s95(b, 0.0)["median"] / np.sqrt(b) == pytest.approx(1.96, rel=0.01)


def test_significance_closed_form():
    assert significance(10.0, 100.0, 0.0) == pytest.approx(np.sqrt(2 * (110 * np.log(1.1) - 10)))
    assert significance(10.0, 100.0, 0.2) < significance(10.0, 100.0, 0.0)


def test_contour_of_a_known_field():
    """mu_up = m / 300 over a grid: the contour is the line m_smuon = 300."""
    m, x = np.meshgrid(np.arange(100.0, 601.0, 50.0), np.arange(0.0, 401.0, 50.0))
    keep = x < m
    lines = exclusion_contour(m[keep], x[keep], m[keep] / 300.0)
    assert lines
    pts = np.concatenate(lines)
    assert np.allclose(pts[:, 0], 300.0, atol=1e-6)
