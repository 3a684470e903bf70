"""Helpers shared by the benchmarks: machine description, matmul peak, memory, tables.

torch is imported inside the functions that use it, not here: pipeline_overhead.py imports this
module in child processes that measure which modules get imported and how long that takes.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import importlib.metadata
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where the scripts write their tables unless ``--out`` says otherwise."""


def comma_list(kind: Callable[[str], Any]) -> Callable[[str], list]:
    """An argparse type: ``"a,b"`` -> ``[kind("a"), kind("b")]``."""
    return lambda text: [kind(part) for part in text.split(",") if part]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, the CPU model otherwise."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def device_kind(device: torch.device) -> str:
    """A file-name tag for the device: ``cpu`` or the GPU's name as a slug."""
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so the clock reads finished work."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 float32 matmuls inside the block (as training's ``tf32`` setting), restored after."""
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def matmul_peaks(device: torch.device, repeats: int = 3) -> dict[str, float]:
    """GFLOP/s of the best of ``repeats`` n x n matmuls after one warm-up, per precision.

    CPU: fp32 at n = 4096. CUDA: fp32 (TF32 off), tf32 and bf16 at n = 8192.
    """
    import torch

    cuda = device.type == "cuda"
    n = 8192 if cuda else 4096
    kinds = {"fp32": (torch.float32, False)}
    if cuda:
        kinds |= {"tf32": (torch.float32, True), "bf16": (torch.bfloat16, False)}
    peaks = {}
    for name, (dtype, allow_tf32) in kinds.items():
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        with tf32(allow_tf32):
            matmul = lambda a=a, b=b: a @ b  # noqa: E731
            timed(matmul, 1, device)
            best = min(timed(matmul, 1, device) for _ in range(repeats))
        peaks[name] = 2 * n**3 / best / 1e9
    return peaks


def timed(step: Callable[[], Any], n: int, device: torch.device) -> float:
    """Seconds per call over ``n`` consecutive calls of ``step`` (device synchronised)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / n


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1))


def peak_growth_mb(step: Callable[[], Any], device: torch.device, n: int = 3) -> float:
    """Peak memory (MB) of ``n`` steps above what was resident just before the first one.

    CUDA: ``max_memory_allocated`` during the steps minus ``memory_allocated`` before them.
    CPU (Linux): the process's high-water RSS (VmHWM, reset through /proc/self/clear_refs so
    earlier set-up peaks do not count) after the steps minus VmRSS before them. This is the
    kernel value ``ru_maxrss`` reads, but without ``ru_maxrss``'s floor at the peak of the
    process before ``exec``, which in a spawned child can be the parent's. It counts
    gradients, optimizer state, activations and what the allocator keeps, not the model, EMA
    or data built before the steps.
    """
    import torch

    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        timed(step, n, device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    timed(step, n, device)
    return (_status_kb("VmHWM") - before) / 1024


def markdown_table(
    rows: list[dict[str, Any]], columns: dict[str, tuple[str, str]] | None = None
) -> str:
    """A Markdown table: ``columns`` maps each header to (row key, str.format spec).

    Without ``columns``, every key of the rows is a column, headed by the key, values as ``str``.
    Columns whose key the rows lack (e.g. measurements that were skipped) are left out.
    """
    columns = columns or {key: (key, "{}") for key in rows[0]}
    columns = {h: kf for h, kf in columns.items() if kf[0] in rows[0]}
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---:" for _ in columns) + "|\n"
    body = "".join(
        "| " + " | ".join(fmt.format(row[key]) for key, fmt in columns.values()) + " |\n"
        for row in rows
    )
    return head + body


def versions_line(*packages: str) -> str:
    """Installed versions of ``packages``, then Python's: ``torch 2.13.0, Python 3.11.7``."""
    found = [f"{name} {importlib.metadata.version(name)}" for name in packages]
    return ", ".join([*found, f"Python {platform.python_version()}"])


def run_lines() -> list[str]:
    """This run's command line and date."""
    return [
        f"command: `python {shlex.join(sys.argv)}`",
        f"date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
    ]


def machine_lines(device: torch.device, peaks: dict[str, float] | None = None) -> list[str]:
    """Device, CPU, threads, versions, matmul peaks (when given), command line and date."""
    import torch

    peak = ", ".join(f"{k} {v:,.0f}" for k, v in (peaks or {}).items())
    return [
        f"device: {device.type} ({device_name(device)})",
        f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads",
        versions_line("torch"),
        *([f"matmul peak GFLOP/s: {peak}"] if peak else []),
        *run_lines(),
    ]


def report_head(title: str, lines: list[str]) -> str:
    """A report's Markdown heading, then ``lines`` as a bullet list and a blank line."""
    return f"# {title}\n\n" + "".join(f"- {line}\n" for line in lines) + "\n"


def write_report(stem: Path, title: str, lines: list[str], table: str, rows: list[dict]) -> None:
    """``stem``.csv (every key of ``rows``) and ``stem``.md (title, ``lines``, ``table``)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".md").write_text(report_head(title, lines) + table)
