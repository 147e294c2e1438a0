"""Render ``deploy/overlays/<name>`` with the real ``kubectl kustomize`` (offline, no cluster).

Tests skip visibly, naming the reason, where kubectl is not installed; a render that
fails is a test failure with kubectl's own message.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ("single", "ha")
Doc = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary, or a visible skip of the calling test."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed: the deploy/ overlays cannot be rendered here")
    return found


@functools.cache
def _render_text(binary: str, overlay: str) -> str:
    result = subprocess.run(
        [binary, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay}: {result.stderr.strip()}"
    return result.stdout


def render(overlay: str) -> list[Doc]:
    """The overlay's rendered objects (a fresh copy each call: tests may not share edits)."""
    return [doc for doc in yaml.safe_load_all(_render_text(kubectl(), overlay)) if doc]


def only(docs: list[Doc], kind: str) -> Doc:
    """The one object of ``kind``; fails naming how many there were."""
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]
