"""Shared test helpers: where the real models live, and running the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL_MODELS = Path(os.environ.get("EMBCONV_REAL_MODELS", ROOT.parent / "shared" / "real-models"))
FIXTURES = ROOT / "tests" / "fixtures"


def real_model_truths() -> list[tuple[Path, dict]]:
    """(model file, truth) for every truth.*.json in ../shared/real-models (empty if absent)."""
    if not REAL_MODELS.is_dir():
        return []
    out = []
    for truth_path in sorted(REAL_MODELS.glob("*/truth.*.json")):
        truth = json.loads(truth_path.read_text())
        out.append((truth_path.parent / truth["file"], truth))
    return out


def real_model_files() -> list[Path]:
    if not REAL_MODELS.is_dir():
        return []
    skip = {".json", ".txt", ".csv", ".md"}
    return sorted(p for p in REAL_MODELS.glob("*/*") if p.is_file() and p.suffix not in skip)


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converter", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


needs_real_models = pytest.mark.skipif(not REAL_MODELS.is_dir(), reason="../shared/real-models is absent")
