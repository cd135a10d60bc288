"""Settings and users: demo users only in demo mode; placeholder secrets refused outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import DEFAULT_COOKIE_SECRET, Settings
from core.users import DEMO_USERS, add_user, load_credentials, role_of

SECRET = "x" * 40


def test_users_demo_mode_adds_labelled_demo_users(tmp_path: Path) -> None:
    creds = load_credentials(Settings(credentials_file=tmp_path / "none.yaml"))
    assert set(creds["usernames"]) == set(DEMO_USERS)
    assert all("(demo-only)" in u["name"] for u in creds["usernames"].values())
    assert role_of(creds, "demo-editor") == "editor"


def test_users_outside_demo_mode_refuses_the_default_secret(tmp_path: Path) -> None:
    settings = Settings(demo_mode=False, credentials_file=tmp_path / "c.yaml")
    assert settings.auth_cookie_secret == DEFAULT_COOKIE_SECRET
    with pytest.raises(RuntimeError, match="AUTH_COOKIE_SECRET"):
        load_credentials(settings)


def test_users_outside_demo_mode_needs_real_users(tmp_path: Path) -> None:
    settings = Settings(demo_mode=False, auth_cookie_secret=SECRET,
                        credentials_file=tmp_path / "c.yaml")
    with pytest.raises(RuntimeError, match="add-user"):
        load_credentials(settings)
    add_user(username="alice", name="Alice", role="admin", password="long enough pw",
             settings=settings)
    creds = load_credentials(settings)
    assert set(creds["usernames"]) == {"alice"}
    assert creds["usernames"]["alice"]["password"].startswith("$2")
    assert oct((tmp_path / "c.yaml").stat().st_mode)[-3:] == "600"


def test_users_outside_demo_mode_refuses_demo_usernames_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "usernames:\n  demo-admin:\n    name: x\n    password: $2b$04$abcdefghijklmnopqrstuu"
        "abcdefghijklmnopqrstuvwxyz01234\n    roles: [admin]\n"
    )
    settings = Settings(demo_mode=False, auth_cookie_secret=SECRET, credentials_file=path)
    with pytest.raises(RuntimeError, match="demo-only users"):
        load_credentials(settings)


def test_users_plain_text_passwords_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "usernames:\n  bob:\n    name: Bob\n    password: hunter2\n    roles: [viewer]\n"
    )
    with pytest.raises(RuntimeError, match="plain-text password"):
        load_credentials(Settings(credentials_file=path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "a b"}, "username"),
        ({"username": "demo-admin"}, "reserved"),
        ({"role": "root"}, "role"),
        ({"password": "short"}, "at least 10"),
    ],
)
def test_users_add_user_rejects_bad_input(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"username": "carol", "name": "Carol", "role": "viewer", "password": "long enough pw"}
    args.update(kwargs)
    settings = Settings(credentials_file=tmp_path / "c.yaml")
    with pytest.raises(ValueError, match=message):
        add_user(**args, settings=settings)
    assert not (tmp_path / "c.yaml").exists()


def test_settings_reject_unsupported_database_urls() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings(database_url="mysql://x")
