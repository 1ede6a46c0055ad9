"""Exceptions of the public contract.

Plugins raise :class:`PlatformError` (or :class:`ConflictError`): a clear
failure of one tenant's step, which the next run retries by observing again.
Anything else a hook or an action raises is treated as a plugin bug: recorded as
a failed step that names the plugin, and the run goes on with the other tenants.
"""

from __future__ import annotations


class MeshcoreError(Exception):
    """Base of every error meshcore reports to users without a traceback."""


class ConfigError(MeshcoreError):
    """The config is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the configuration")


class ConfigProblem:
    """One config problem: which file, which key path, what is wrong."""

    __slots__ = ("file", "line", "message", "path", "plugin")

    def __init__(self, file: str, path: str, message: str, line: int | None = None, plugin: bool = False):
        self.file = file
        self.path = path
        self.message = message
        self.line = line
        self.plugin = plugin  # the problem is a missing, broken or misbehaving plugin (exit code 3)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<top>'}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self!s})"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "plugin": self.plugin,
        }


class PluginError(MeshcoreError):
    """A plugin failed to load, misbehaved or returned a malformed result."""

    def __init__(self, plugin: str, message: str):
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class PlatformError(MeshcoreError):
    """A platform operation failed for a reason the user must act on (not retried)."""


class ConflictError(PlatformError):
    """The platform holds something that contradicts the desired state (e.g. an account owned elsewhere)."""


class RefusedError(MeshcoreError):
    """The run is refused before any change (e.g. more deletions than allowed); exit code 2."""


class UsageError(MeshcoreError):
    """A command-line argument is invalid (e.g. a period that is not a month); exit code 2."""


class StateStoreError(MeshcoreError):
    """The state store cannot be opened or used (missing, corrupt, read-only, too new); exit code 5."""


class LockHeldError(MeshcoreError):
    """Another runner holds the state store's lease."""


class FencedError(MeshcoreError):
    """A runner in shared mode lost a lease (it expired, another runner took it): its write is refused.

    Raised by the state store instead of recording anything for that tenant (or
    platform); the runner stops working on it, the lease's new holder goes on.
    """


class StoppedError(MeshcoreError):
    """The run was asked to stop (SIGTERM, SIGINT) before it started: nothing was done."""
