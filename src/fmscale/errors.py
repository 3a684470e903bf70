"""fmscale's exceptions, importable without torch.

Every error a user can cause names the file, field or cell and the fix in its message; the CLI
maps each to an exit code (``fmscale.cli``), so catching them needs none of the modules that
raise them.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting; the message names the key and what is allowed."""


class DataError(ValueError):
    """Bad data input; the message names the file (or config field) and the problem."""


class ScalingTableError(ValueError):
    """A malformed scaling table; the message names the file, the row and the field."""


class ParamGateError(RuntimeError):
    """A scale step is outside the allowed ratio band or an arch is off its capacity target."""


class CannotWrite(OSError):
    """A checkpoint or an output could not be written (read-only folder, full disk, ...)."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


class CellBusy(RuntimeError):
    """Another live process trains into the same run folder."""


class CannotLock(OSError):
    """The filesystem has no flock (Lustre mounted without it, NFS without lockd)."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the message names the step."""


class Preempted(RuntimeError):
    """SIGTERM / SIGINT arrived; a checkpoint was written and the cell can resume."""


class RequiresFused(RuntimeError):
    """``train.require_fused`` and mamba-ssm's fused kernels cannot run here."""


class OutOfMemory(MemoryError):
    """The model or a training batch does not fit; the message gives the estimated sizes."""


class CellError(ValueError):
    """A run folder that cannot be evaluated; the message names the file and the fix."""


class ResultsError(ValueError):
    """A results folder or file that cannot be read; the message names it."""


class RefineError(ValueError):
    """A round file that cannot be read; the message names it."""


class MigrateError(ValueError):
    """A results folder that cannot be migrated as asked; the message says why."""


class AnalysisError(ValueError):
    """An input the analysis cannot read; the message names the file and what is wrong."""


class ExportError(ValueError):
    """A results folder that cannot be exported, or a tracker that is not installed."""
