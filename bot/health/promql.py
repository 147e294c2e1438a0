"""The few PromQL functions our rules need, as Prometheus 2.x computes them.

Times are integer milliseconds (Prometheus's own unit) and the arithmetic follows
``promql/functions.go`` step by step, so a rule here and the same expression in
Prometheus agree to the last bit (tests/test_health_promtool.py holds us to it):

- an instant selector takes the newest sample at most ``LOOKBACK_MS`` old (both
  ends inclusive, as in 2.x): a missed check does not reset a ``for`` timer;
- a range selector ``[5m]`` takes the samples in ``[t - 5m, t]``;
- ``rate`` extrapolates to the window's edges and treats a drop as a counter reset;
- ``predict_linear``/``deriv`` fit a least-squares line with Kahan summation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[int, float]  # (milliseconds since the epoch, value)

LOOKBACK_MS = 5 * 60 * 1000  # Prometheus's default --query.lookback-delta


def instant(points: Sequence[Point], at_ms: int, *, lookback_ms: int = LOOKBACK_MS) -> float | None:
    """The value an instant vector selector sees at ``at_ms`` (None: no sample in lookback)."""
    for t, value in reversed(points):
        if t > at_ms:
            continue
        return value if t >= at_ms - lookback_ms else None
    return None


def window(points: Sequence[Point], at_ms: int, range_ms: int) -> list[Point]:
    """The samples a range selector ``[range]`` sees at ``at_ms``: ``[at - range, at]``."""
    start = at_ms - range_ms
    return [(t, v) for t, v in points if start <= t <= at_ms]


def previous(points: Sequence[Point], at_ms: int) -> tuple[Point, Point] | None:
    """The last two samples at or before ``at_ms`` (None: fewer than two)."""
    before = [(t, v) for t, v in points if t <= at_ms]
    return (before[-2], before[-1]) if len(before) >= 2 else None


def rate(points: Sequence[Point], at_ms: int, range_ms: int) -> float | None:
    """``rate(counter[range])`` at ``at_ms``: per-second increase, extrapolated like Prometheus."""
    samples = window(points, at_ms, range_ms)
    if len(samples) < 2:
        return None
    range_start, range_end = at_ms - range_ms, at_ms
    first_t, first_v = samples[0]
    last_t, last_v = samples[-1]
    result = last_v - first_v
    last_value = 0.0
    for _, value in samples:  # a counter that went down was reset: add what it had
        if value < last_value:
            result += last_value
        last_value = value
    duration_to_start = (first_t - range_start) / 1000
    duration_to_end = (range_end - last_t) / 1000
    sampled_interval = (last_t - first_t) / 1000
    if sampled_interval <= 0:
        # Samples at one instant (a restarted bot checked within the same millisecond):
        # Prometheus never stores two, so there is no rate to read from them yet.
        return None
    average_between = sampled_interval / (len(samples) - 1)
    if result > 0 and first_v >= 0:
        # A counter cannot go below zero: do not extrapolate past the point it was zero.
        duration_to_zero = sampled_interval * (first_v / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average_between * 1.1
    interval = sampled_interval
    interval += duration_to_start if duration_to_start < threshold else average_between / 2
    interval += duration_to_end if duration_to_end < threshold else average_between / 2
    result = result * (interval / sampled_interval)
    return result / (range_ms / 1000)


def linear_regression(samples: Sequence[Point], intercept_ms: int) -> tuple[float, float]:
    """(slope per second, value at ``intercept_ms``) of the least-squares line."""
    n = 0.0
    sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    init_y = samples[0][1]
    const_y = True
    for index, (t, value) in enumerate(samples):
        if const_y and index > 0 and value != init_y:
            const_y = False
        n += 1.0
        x = (t - intercept_ms) / 1e3
        sum_x, c_x = _kahan_inc(x, sum_x, c_x)
        sum_y, c_y = _kahan_inc(value, sum_y, c_y)
        sum_xy, c_xy = _kahan_inc(x * value, sum_xy, c_xy)
        sum_x2, c_x2 = _kahan_inc(x * x, sum_x2, c_x2)
    if const_y:
        return (math.nan, math.nan) if math.isinf(init_y) else (0.0, init_y)
    sum_x, sum_y, sum_xy, sum_x2 = sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x
    intercept = sum_y / n - slope * sum_x / n
    return slope, intercept


def _kahan_inc(inc: float, total: float, compensation: float) -> tuple[float, float]:
    """Neumaier's improved Kahan step, as Prometheus's ``kahanSumInc``."""
    t = total + inc
    if abs(total) >= abs(inc):
        compensation += (total - t) + inc
    else:
        compensation += (inc - t) + total
    return t, compensation


def predict_linear(
    points: Sequence[Point], at_ms: int, range_ms: int, horizon_s: float
) -> tuple[float, float] | None:
    """(``predict_linear(x[range], horizon)``, ``deriv(x[range])``) at ``at_ms``; None: < 2."""
    samples = window(points, at_ms, range_ms)
    if len(samples) < 2 or samples[0][0] == samples[-1][0]:  # one instant: no line (see rate)
        return None
    slope, intercept = linear_regression(samples, at_ms)
    return slope * horizon_s + intercept, slope
