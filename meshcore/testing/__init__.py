"""meshcore's test kit, an opt-in pytest plugin.

Enable it with ``-p meshcore.testing`` or ``pytest_plugins = ["meshcore.testing"]`` in a
``conftest.py``; the fixtures live in :mod:`meshcore.testing.fixtures` (loaded through
``pytest_plugins`` below, so importing this package — as the ``fake`` platform's entry point
does — imports neither pytest nor the state store). Plugin authors subclass
:class:`meshcore.testing.conformance.PlatformPluginConformance`.
"""

pytest_plugins = ["meshcore.testing.fixtures"]
