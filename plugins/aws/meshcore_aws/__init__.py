"""meshcore platform plugin for AWS (platform type ``aws``).

Importing this package imports neither boto3 nor botocore: they are loaded by
the functions that talk to AWS, so ``meshcore plugins`` stays fast.
"""

__version__ = "0.2.0"
