"""App users: a YAML credentials file (outside git) plus, in demo mode only, demo users.

The file has streamlit-authenticator's shape::

    usernames:
      alice:
        name: Alice Example
        email: alice@example.com
        password: $2b$12$...   # bcrypt hash, written by `python -m core.cli add-user`
        roles: [editor]
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from core.config import Settings, get_settings
from core.types import ROLES, Role

# DEMO-ONLY accounts: they exist only while DEMO_MODE is true, and the app refuses to start
# outside demo mode if the credentials file reuses one of these usernames.
DEMO_USERS: dict[str, dict[str, str]] = {
    "demo-viewer": {"name": "Demo Viewer", "password": "demo-viewer", "role": "viewer"},
    "demo-editor": {"name": "Demo Editor", "password": "demo-editor", "role": "editor"},
    "demo-admin": {"name": "Demo Admin", "password": "demo-admin", "role": "admin"},
}
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{2,64}$")


@lru_cache
def _demo_credentials() -> dict[str, dict[str, Any]]:
    # Low bcrypt cost on purpose: these passwords are public demo passwords.
    return {
        username: {
            "name": f"{user['name']} (demo-only)",
            "email": f"{username}@demo.invalid",
            "password": bcrypt.hashpw(user["password"].encode(), bcrypt.gensalt(4)).decode(),
            "roles": [user["role"]],
        }
        for username, user in DEMO_USERS.items()
    }


def read_credentials_file(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    users = data.get("usernames") or {}
    if not isinstance(users, dict):
        raise RuntimeError(f"{path}: 'usernames' must be a mapping of username to user.")
    for username, user in users.items():
        password = str(user.get("password", ""))
        if not password.startswith("$2"):
            raise RuntimeError(
                f"{path}: user '{username}' has a plain-text password; store only bcrypt "
                "hashes (use `python -m core.cli add-user`)."
            )
        roles = user.get("roles") or []
        if not roles or any(r not in ROLES for r in roles):
            raise RuntimeError(
                f"{path}: user '{username}' needs roles, a list of {', '.join(ROLES)}."
            )
    return {str(k).lower(): v for k, v in users.items()}


def load_credentials(settings: Settings | None = None) -> dict[str, Any]:
    """The credentials for streamlit-authenticator; refuses unsafe setups outside demo mode."""
    settings = settings or get_settings()
    users = read_credentials_file(settings.credentials_file)
    if settings.demo_mode:
        merged = copy.deepcopy(_demo_credentials())
        merged.update(users)
        return {"usernames": merged}
    settings.check_secrets()
    clash = sorted(set(users) & set(DEMO_USERS))
    if clash:
        raise RuntimeError(
            f"DEMO_MODE is off but {settings.credentials_file} contains demo-only users "
            f"({', '.join(clash)}): remove them."
        )
    if not users:
        raise RuntimeError(
            f"DEMO_MODE is off and {settings.credentials_file} has no users: add one with "
            "`python -m core.cli add-user --username <u> --name <n> --role admin`."
        )
    return {"usernames": users}


def role_of(credentials: dict[str, Any], username: str | None) -> Role | None:
    """The highest role a user holds (admin > editor > viewer)."""
    if not username:
        return None
    user = credentials["usernames"].get(username.lower())
    if not user:
        return None
    roles = user.get("roles") or []
    for role in ("admin", "editor", "viewer"):
        if role in roles:
            return role  # type: ignore[return-value]
    return None


def add_user(
    *, username: str, name: str, role: Role, password: str, email: str = "",
    settings: Settings | None = None,
) -> Path:
    """Add or replace a user in the credentials file; the password is bcrypt-hashed."""
    settings = settings or get_settings()
    if not _USERNAME.match(username):
        raise ValueError("username: use 2-64 letters, digits, '.', '_' or '-'")
    if username.lower() in DEMO_USERS:
        raise ValueError(f"username: '{username}' is reserved for the demo-only accounts")
    if role not in ROLES:
        raise ValueError(f"role: use one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("password: use at least 10 characters")
    path = settings.credentials_file
    data: dict[str, Any] = {}
    if path.exists():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.setdefault("usernames", {})[username.lower()] = {
        "name": name,
        "email": email,
        "password": bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode(),
        "roles": [role],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
    path.chmod(0o600)
    return path
