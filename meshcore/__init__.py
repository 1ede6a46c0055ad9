"""meshcore: a plugin-based platform adapter framework.

The public surface for plugin authors: :data:`hookimpl` (the marker for hook
implementations), the models in :mod:`meshcore.specs` (what hooks receive) and
:mod:`meshcore.results` (what they return), :mod:`meshcore.errors`,
:class:`meshcore.context.HookContext` and :mod:`meshcore.retry`.
"""

from meshcore.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
