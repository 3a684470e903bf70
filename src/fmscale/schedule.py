"""A study's jobs scheduled on N cores: the wall time of ``snakemake --cores N``, simulated.

Greedy list scheduling, event by event: whenever cores are free, the ready jobs (every input
job finished) start in Snakemake's order of preference while their threads fit. Snakemake
prefers, at equal priority, the job with the larger input files (its scheduler's reward:
priority, temp-file bytes, input bytes), so an evaluate job (model + dataset) starts before a
train job (gate + table + dataset), and a train job before a reference or the gate (the
dataset alone); ``RULE_ORDER`` encodes that, and ties keep the order the jobs were listed in.
A job asking for more threads than there are cores gets all of them (as Snakemake scales
threads down to ``--cores``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

RULE_ORDER = (
    "prepare_data",
    "evaluate",
    "train",
    "verify_params",
    "reference",
    "summarize",
    "analyze",
)
"""The order in which ready jobs of each rule start (Snakemake's input-size reward)."""


@dataclass(frozen=True)
class Job:
    """One job: its name, rule, wall seconds, threads and the names of the jobs it waits on."""

    name: str
    rule: str
    seconds: float
    threads: int = 1
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scheduled:
    """When each job started and ended; ``wall_s`` is the last end."""

    start: dict[str, float]
    end: dict[str, float]

    @property
    def wall_s(self) -> float:
        return max(self.end.values(), default=0.0)


def simulate(jobs: list[Job], cores: int) -> Scheduled:
    """Run ``jobs`` on ``cores`` cores in simulation; ValueError on a cycle or unknown input."""
    if cores < 1:
        raise ValueError(f"cores={cores} must be >= 1")
    by_name = {job.name: job for job in jobs}
    unknown = {a for job in jobs for a in job.after} - by_name.keys()
    if unknown:
        raise ValueError(f"jobs wait on unknown jobs: {sorted(unknown)}")
    rank = {job.name: (_rule_rank(job.rule), i) for i, job in enumerate(jobs)}
    waiting = {job.name: set(job.after) for job in jobs}
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    running: list[tuple[float, str]] = []  # (end time, name)
    now, free = 0.0, cores
    while len(end) < len(jobs):
        ready = sorted((n for n, deps in waiting.items() if not deps), key=rank.__getitem__)
        for name in ready:
            threads = min(by_name[name].threads, cores)
            if threads <= free:
                free -= threads
                start[name] = now
                del waiting[name]
                heapq.heappush(running, (now + by_name[name].seconds, name))
        if not running:
            raise ValueError(f"jobs wait on each other: {sorted(waiting)}")
        now, name = heapq.heappop(running)
        end[name] = now
        free += min(by_name[name].threads, cores)
        for deps in waiting.values():
            deps.discard(name)
    return Scheduled(start, end)


def _rule_rank(rule: str) -> int:
    return RULE_ORDER.index(rule) if rule in RULE_ORDER else len(RULE_ORDER)
