"""Generated docs are current: README.md's numbers from the committed studies (never retyped),
docs/metrics.md from the metrics catalogue and docs/architecture.md from the imports."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["render_findings.py", "render_docs.py"])
def test_generated_docs_are_what_their_sources_give(script):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
