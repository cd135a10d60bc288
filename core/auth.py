"""Who is acting, and what their role allows. Used by pages, API and services alike."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import PermissionDenied
from core.types import Role

_RANK = {"viewer": 0, "editor": 1, "admin": 2}


@dataclass(frozen=True)
class Actor:
    """A user of the app, an API key's owner, or a system job (e.g. ``airflow``)."""

    name: str
    role: Role = "viewer"

    def can(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def require(self, role: Role, action: str) -> None:
        if not self.can(role):
            raise PermissionDenied(
                f"{self.name} has the {self.role} role and cannot {action}: "
                f"ask an admin for the {role} role."
            )


SYSTEM = Actor(name="system", role="admin")
