"""Verdict lines of the verification (before/after diagnosis), built from real diagnoses."""

from __future__ import annotations

from dataclasses import replace

from bot.diagnosis.model import Diagnosis
from bot.remediation.verify import compare
from tests.remediation_support import Env, load_sessions

pytest_plugins = ("tests.remediation_support",)  # the env/kube fixtures


def _at(d: Diagnosis, ratio: float | None) -> Diagnosis:
    return replace(d, usage_ratio=ratio)


def test_verdicts(env: Env) -> None:
    load_sessions(env.client, 100)
    d = env.diagnose()
    assert compare(_at(d, 0.93), _at(d, 0.47)).verdict == "memory 93% -> 47%: fixed"
    assert compare(_at(d, 0.95), _at(d, 0.85)).verdict == (
        "memory 95% -> 85%: better, still above 80%"
    )
    assert compare(_at(d, 0.93), _at(d, 0.93), pending="p").verdict == "memory 93% -> 93%: p"
    assert compare(_at(d, 0.50), _at(d, 0.45)).verdict == "memory 50% -> 45%: fixed"
    assert compare(_at(d, 0.85), _at(d, 0.90), pending="p").verdict == (
        "memory 85% -> 90%: worse: p"
    )
    assert compare(_at(d, 0.9), _at(d, None), pending="p").verdict.startswith(
        "no memory limit after the change"
    )


def test_numbers_come_from_the_diagnoses(env: Env) -> None:
    load_sessions(env.client, 100)
    before = env.diagnose()
    load_sessions(env.client, 100, start=100)
    after = env.diagnose()
    check = compare(before, after)
    assert (check.dbsize_before, check.dbsize_after) == (100, 200)
    assert (check.session_keys_before, check.session_keys_after) == (100, 200)
    assert check.used_memory_after > check.used_memory_before
    assert check.evicted_keys_before == check.evicted_keys_after == 0
