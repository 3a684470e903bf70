"""Write tests/data/step_reference.json: the per-step training losses of every arch (CPU table,
tiny) over ``STEPS`` steps from seed 0, as this checkout's trainer computes them.

    python scripts/make_step_reference.py [--out tests/data/step_reference.json]

``tests/test_train_step.py`` trains the same cells with the current code and checks the
losses against this file: a change that cuts a step's operations must not change what it
computes. Regenerate only when a change of the losses is intended, and say so in its commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from step_reference import ARCHS, losses  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests/data/step_reference.json")
    args = parser.parse_args(argv)
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    reference = {
        "revision": revision,
        "losses": {arch: losses(arch) for arch in ARCHS},
        "autocast_losses": {arch: losses(arch, autocast=True) for arch in ARCHS},
    }
    args.out.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {args.out} from {revision}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
