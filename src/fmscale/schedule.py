"""A study's jobs scheduled on N cores: the wall time of ``snakemake --cores N``, simulated.

Greedy list scheduling, event by event: whenever cores are free, ready jobs (every input job
finished) start while their threads fit. Snakemake's default scheduler (``--scheduler ilp``)
picks, among ready jobs of equal priority (every fmscale rule's), any set that fills the
cores; which one is up to its solver. So the order among ready jobs is a parameter: the order
the jobs are listed in, or a random one (``seed``), and ``wall_times`` gives the spread over
many. A job asking for more threads than there are cores gets all of them (as Snakemake scales
threads down to ``--cores``).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass


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


def simulate(jobs: list[Job], cores: int, seed: int | None = None) -> Scheduled:
    """Run ``jobs`` on ``cores`` cores in simulation, ready jobs in the listed order (``seed``:
    in a random order drawn with it); ValueError on a cycle or an unknown input."""
    if cores < 1:
        raise ValueError(f"cores={cores} must be >= 1")
    by_name = {job.name: job for job in jobs}
    unknown = {a for job in jobs for a in job.after} - by_name.keys()
    if unknown:
        raise ValueError(f"jobs wait on unknown jobs: {sorted(unknown)}")
    order = list(range(len(jobs)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    rank = {job.name: key for job, key in zip(jobs, order, strict=True)}
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


def wall_times(jobs: list[Job], cores: int, orders: int) -> list[float]:
    """The wall time of ``jobs`` on ``cores`` cores under ``orders`` random orders of ready jobs
    (seeds 0 .. orders - 1), sorted."""
    return sorted(simulate(jobs, cores, seed).wall_s for seed in range(orders))
