"""The AWS emulator in a process of its own, with AWS-like latency, for benchmarks.

    python bench/emulator.py --latency 0.1 --create-seconds 5 --assignment-seconds 1 --users 3

Starts the sandbox organization (moto's server plus the strict profile),
bootstraps it, creates ``--users`` Identity Center users (user0, user1, ...),
prints one JSON line ``{"env": {...}}`` for the client to use, and serves until
its standard input closes. Every request waits ``--latency`` seconds before it
is answered (a network round trip; requests wait concurrently), and a new
account stays ``IN_PROGRESS`` for ``--create-seconds`` and an Identity Center account
assignment for ``--assignment-seconds``. Running it apart keeps
its CPU out of the measured process and off its GIL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds added to every request.")
    parser.add_argument("--create-seconds", type=float, default=0.0, help="How long CreateAccount takes.")
    parser.add_argument("--assignment-seconds", type=float, default=0.0, help="How long an assignment takes.")
    parser.add_argument("--users", type=int, default=3)
    args = parser.parse_args()

    from meshcore_aws_emulator import strict
    from moto.server import DomainDispatcherApplication

    from meshcore_aws.sandbox import Sandbox

    box = Sandbox()
    box.start()
    box.bootstrap()
    store = box.client("identitystore")
    instance = box.client("sso-admin").list_instances()["Instances"][0]
    for i in range(args.users):
        store.create_user(
            IdentityStoreId=instance["IdentityStoreId"],
            UserName=f"user{i}",
            DisplayName=f"u{i}",
            Name={"GivenName": "u", "FamilyName": str(i)},
        )
    strict.PROFILE.create_seconds = args.create_seconds
    strict.PROFILE.assignment_seconds = args.assignment_seconds
    if args.latency > 0:
        answer = DomainDispatcherApplication.__call__

        def slow(self, environ, start_response):  # type: ignore[no-untyped-def]
            time.sleep(args.latency)
            return answer(self, environ, start_response)

        DomainDispatcherApplication.__call__ = slow  # type: ignore[method-assign]
    print(json.dumps({"env": box.env(), "accounts": box.accounts}), flush=True)
    sys.stdin.read()  # until the client closes our standard input
    box.stop()


if __name__ == "__main__":
    main()
