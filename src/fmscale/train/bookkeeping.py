"""What a running loop keeps besides the model: the stop flag (SIGTERM / SIGINT), the stopwatch and
the window of losses since the last log row."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch


class StopFlag:
    """Turns SIGTERM / SIGINT into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Stopwatch:
    """Seconds between laps, on the performance counter, each read after ``sync`` returns (on
    CUDA ``torch.cuda.synchronize``: a lap times the steps run, not the steps queued)."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync
        self.restart()

    def restart(self) -> None:
        self._tick = time.perf_counter()

    def lap(self) -> float:
        if self._sync is not None:
            self._sync()
        now = time.perf_counter()
        seconds, self._tick = now - self._tick, now
        return seconds


class LogWindow:
    """The per-step losses and gradient norms since the last log row, and their training time.

    Saved in each checkpoint, so the first row after a resume averages the same steps as the
    row of an uninterrupted run.
    """

    def __init__(
        self,
        losses: Iterable[torch.Tensor] = (),
        norms: Iterable[torch.Tensor] = (),
        seconds: float = 0.0,
    ):
        self._losses: list[torch.Tensor] = list(losses)
        self._norms: list[torch.Tensor] = list(norms)
        self.seconds = seconds

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self._losses.append(loss)
        self._norms.append(grad_norm)

    def losses(self) -> torch.Tensor:
        return torch.stack(self._losses).float().cpu()

    def grad_norm(self) -> float:
        return torch.stack(self._norms).mean().item()

    def rate(self) -> float:
        """Steps per second of training time."""
        return len(self._losses) / self.seconds

    def clear(self) -> None:
        self._losses, self._norms, self.seconds = [], [], 0.0

    def state(self) -> dict[str, Any]:
        return {
            "losses": _stack(self._losses),
            "grad_norms": _stack(self._norms),
            "seconds": self.seconds,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> LogWindow:
        return cls(
            state["losses"].to(device).unbind(),
            state["grad_norms"].to(device).unbind(),
            state["seconds"],
        )


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors) if tensors else torch.empty(0)
