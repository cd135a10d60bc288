"""Admin command line: ``python -m core.cli <command> --help``.

Each command is one function taking parsed arguments; it prints a clear message and exits
non-zero on any error a user can fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core.errors import DomainError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(
    name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Handler], Handler]:
    """Register a subcommand: `arguments` adds its options, the decorated function runs it."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = (help_text, arguments or (lambda _p: None), handler)
        return handler

    return register


def _session():  # type: ignore[no-untyped-def]
    from db.session import session_factory

    return session_factory()()


# --------------------------------------------------------------------------- database


@command("migrate", "Upgrade the database at DATABASE_URL to the latest schema (Alembic).")
def _migrate(_args: argparse.Namespace) -> int:
    from core.config import get_settings
    from db.migrate import upgrade

    upgrade(get_settings().database_url)
    print("Database is at the latest schema.")
    return 0


@command(
    "seed-demo",
    "Load the demo portfolio (metrics, experiments, backlog ideas, metric data). Idempotent.",
)
def _seed_demo(_args: argparse.Namespace) -> int:
    from core.demo import seed_demo

    with _session() as session:
        summary = seed_demo(session)
    print(summary)
    return 0


# --------------------------------------------------------------------------- users


def _add_user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--username", required=True, help="login name (letters, digits, . _ -)")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--email", default="", help="e-mail address (optional)")
    p.add_argument("--role", required=True, choices=["viewer", "editor", "admin"])
    p.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input instead of prompting",
    )


@command(
    "add-user",
    "Add or replace an app user in CREDENTIALS_FILE (the password is stored bcrypt-hashed).",
    _add_user_args,
)
def _add_user(args: argparse.Namespace) -> int:
    import getpass

    from core.users import add_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    path = add_user(
        username=args.username, name=args.name, email=args.email, role=args.role,
        password=password,
    )
    print(f"User '{args.username}' ({args.role}) saved in {path}.")
    return 0


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.cli",
        description="ExperimentOS administration. Settings come from the environment "
        "(DATABASE_URL, ARTIFACTS_URL, ...; see README).",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (help_text, arguments, _handler) in sorted(_COMMANDS.items()):
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _COMMANDS[args.command][2]
    try:
        return handler(args)
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
