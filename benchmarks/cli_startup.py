"""Start-up time of the torch-free commands: this checkout against another revision.

Each command (``fmscale summarize`` / ``analyze``, with ``--help`` and on a missing results
folder, which stops with exit 2 after the CLI's start-up) runs in a fresh interpreter,
alternating between the two source trees, ``--repeats`` times each; the table gives the median
seconds and whether torch was imported.

    python benchmarks/cli_startup.py --baseline 13075ac [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS_DIR, markdown_table, run_lines, write_report

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (
    ["summarize", "--help"],
    ["analyze", "--help"],
    ["summarize", "no-such-results"],
    ["analyze", "no-such-results"],
)
"""--help parses only; a missing results folder runs the command to its first check (exit 2)."""
CODE = (
    "import sys\nfrom fmscale.cli import main\ntry:\n    main({argv!r})\n"
    "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
)


def _run(src: Path, argv: list[str]) -> tuple[float, bool]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(argv=argv)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": ""},
    )
    seconds = time.perf_counter() - start
    return seconds, out.stderr.strip().splitlines()[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cli_startup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.baseline],
            check=True,
        )
        try:
            trees = {"baseline": base / "src", "this": ROOT / "src"}
            rows = []
            for argv in COMMANDS:
                times: dict[str, list[float]] = {name: [] for name in trees}
                torch_in: dict[str, bool] = {}
                for _ in range(args.repeats):
                    for name, src in trees.items():
                        seconds, imported = _run(src, argv)
                        times[name].append(seconds)
                        torch_in[name] = imported
                base_s, this_s = (statistics.median(times[n]) for n in trees)
                rows.append(
                    {
                        "command": "fmscale " + " ".join(argv),
                        "baseline_s": round(base_s, 3),
                        "baseline_torch": torch_in["baseline"],
                        "this_s": round(this_s, 3),
                        "this_torch": torch_in["this"],
                        "speed-up": round(base_s / this_s, 2),
                    }
                )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])
    lines = [
        *run_lines(),
        f"Baseline {args.baseline}; median seconds of {args.repeats} fresh interpreters per "
        "command and tree, the two trees alternating.",
    ]
    write_report(args.out, "CLI start-up", lines, markdown_table(rows), rows)


if __name__ == "__main__":
    main()
