"""README.md's numbers from the committed studies are generated, never retyped."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_findings_are_what_the_committed_files_give():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/render_findings.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
