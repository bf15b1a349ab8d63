"""harness.hyper.probation's two tests give the figures scipy.stats gives for the same data, and say nothing where
there is nothing to tell."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from harness.hyper.probation import weigh


def _gains(rng: random.Random, n: int, keep: float, mean: float) -> list[float]:
    return [0.01 + rng.expovariate(1 / mean) if rng.random() < keep else 0.0 for _ in range(n)]


@pytest.mark.parametrize("seed", range(6))
def test_both_tests_agree_with_scipy(seed):
    rng = random.Random(seed)
    sample, reference = _gains(rng, 40, 0.4, 0.02), _gains(rng, 60, 0.25, 0.01)
    evidence = weigh(sample, reference)
    table = [[sum(g > 0 for g in side), sum(g == 0 for g in side)] for side in (sample, reference)]
    chi2 = stats.chi2_contingency(table, correction=False).statistic
    assert evidence.keeps == pytest.approx(math.copysign(math.sqrt(chi2), table[0][0] / 40 - table[1][0] / 60))
    logs = [[math.log(g) for g in side if g > 0] for side in (sample, reference)]
    welch = stats.ttest_ind(*logs, equal_var=False, alternative="greater")
    assert evidence.sizes == pytest.approx(stats.norm.isf(welch.pvalue), rel=1e-6)


def test_equal_records_and_missing_evidence_tell_nothing():
    same = [0.0, 0.02, 0.0, 0.05, 0.0, 0.03]
    assert weigh(same, same).score == 0 and weigh(same, same).guard == 0  # ties keep the champion
    assert weigh([], same).score == 0 and weigh(same, []).score == 0
    never = weigh([0.0] * 10, same)
    assert never.sizes is None and never.score == never.keeps < 0  # no keep: no size to show, keeps decide
    one = weigh([0.0, 0.9, 0.0], same)  # a single keep, however large, is no evidence of size
    assert one.sizes == 0.0
    twice = weigh([g * 2 for g in same * 4], same * 4)  # the same keep rate, each of 12 keeps twice as large
    assert twice.keeps == 0 and twice.sizes is not None and twice.sizes > 2.5
