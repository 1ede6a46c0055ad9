"""The AWS emulator in a process of its own, with AWS-like latency, for benchmarks.

    python bench/emulator.py --latency 0.1 --create-seconds 5 --assignment-seconds 1 --users 3

Starts the sandbox organization (moto's server plus the strict profile),
bootstraps it, creates ``--users`` Identity Center users (user0, user1, ...),
prints one JSON line ``{"env": {...}}`` for the client to use, and serves until
its standard input closes. Every request waits ``--latency`` seconds before it
is answered (a network round trip; requests wait concurrently), and a new
account stays ``IN_PROGRESS`` for ``--create-seconds`` and an Identity Center account
assignment for ``--assignment-seconds``, and with ``--creation-slots K`` a ``CreateAccount``
while K are in progress is refused (``ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED``); a StackSet operation runs for ``--stackset-seconds``,
one after another on one StackSet (what ``ManagedExecution`` does once an operation is running
or queued). Running it apart keeps
its CPU out of the measured process and off its GIL. Connections are kept alive between
requests, as AWS's endpoints do (waitress; ``--close-connections``: moto's own server, which
closes each one).
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
    parser.add_argument(
        "--stackset-seconds", type=float, default=0.0, help="How long a StackSet operation runs."
    )
    parser.add_argument(
        "--creation-slots",
        type=int,
        default=None,
        help="Account creations AWS lets be in progress at once (more are refused); default: no limit.",
    )
    parser.add_argument(
        "--close-connections",
        action="store_true",
        help="Serve with moto's own server, which closes the connection after every response "
        "(default: waitress, which keeps connections alive as AWS's endpoints do).",
    )
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
    strict.PROFILE.creations_in_progress = args.creation_slots
    if args.stackset_seconds > 0:
        queue_stackset_operations(args.stackset_seconds)
    if args.latency > 0:
        answer = DomainDispatcherApplication.__call__

        def slow(self, environ, start_response):  # type: ignore[no-untyped-def]
            time.sleep(args.latency)
            return answer(self, environ, start_response)

        DomainDispatcherApplication.__call__ = slow  # type: ignore[method-assign]
    env = box.env()
    if not args.close_connections:
        env["AWS_ENDPOINT_URL"] = keep_alive_endpoint()
    print(json.dumps({"env": env, "accounts": box.accounts}), flush=True)
    sys.stdin.read()  # until the client closes our standard input
    box.stop()


def keep_alive_endpoint() -> str:
    """The emulator's backends behind waitress, an HTTP/1.1 server that keeps connections alive (werkzeug's
    closes every one, so each request would cost the client a new connection, which AWS's endpoints do
    not); enough threads that requests wait out their latency concurrently."""
    import threading

    from moto.server import DomainDispatcherApplication, create_backend_app
    from waitress import create_server

    server = create_server(
        DomainDispatcherApplication(create_backend_app),
        host="127.0.0.1",
        port=0,
        threads=128,
        connection_limit=1000,
        channel_timeout=600,
    )
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}"


def queue_stackset_operations(seconds: float) -> None:
    """Each StackSet operation runs ``seconds`` after the previous one on its StackSet has ended."""
    import threading

    from moto.cloudformation.models import CloudFormationBackend
    from moto.cloudformation.responses import CloudFormationResponse

    lock = threading.Lock()
    ends: dict[str, float] = {}
    last: dict[str, float] = {}
    for name in ("create_stack_instances", "update_stack_instances", "delete_stack_instances"):
        original = getattr(CloudFormationResponse, name)

        def queued(self, __original=original):  # type: ignore[no-untyped-def]
            with lock:
                answer = __original(self)
                stack_set = self._get_param("StackSetName")
                op_id = self.cloudformation_backend.describe_stack_set(stack_set).operations[-1][
                    "OperationId"
                ]
                start = max(time.time(), last.get(stack_set, 0.0))
                last[stack_set] = ends[op_id] = start + seconds
            return answer

        setattr(CloudFormationResponse, name, queued)
    describe = CloudFormationBackend.describe_stack_set_operation

    def running(self, stack_set, op_id):  # type: ignore[no-untyped-def]
        found, op = describe(self, stack_set, op_id)
        if time.time() < ends.get(op_id, 0.0):
            return found, {**op, "Status": "RUNNING"}
        return found, op

    CloudFormationBackend.describe_stack_set_operation = running  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
