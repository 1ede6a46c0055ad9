"""Reference platform plugin for meshcore (platform type ``folders``): a complete, small example to copy."""

__version__ = "0.2.0"
