"""Domain errors: each carries a message a product manager (or API client) can act on.

The API maps them to HTTP codes in one place (api/errors.py); pages show `str(error)`.
"""


class DomainError(Exception):
    """Base of every error the services raise on purpose."""

    http_status = 400

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [message]


class InvalidInput(DomainError):
    """The input is malformed or out of range; nothing was written."""

    http_status = 422

    def __init__(self, problems: list[str] | str) -> None:
        items = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(items), problems=items)


class RuleViolation(DomainError):
    """The input is well-formed but the record's current state refuses it (a lifecycle move, a
    plan frozen at launch, an idea already promoted, a missing SQL source).

    HTTP 409 Conflict: "the request could not be completed due to a conflict with the current
    state of the target resource" (RFC 9110 §15.5.10); the message says how to resolve it."""

    http_status = 409


class NotFound(DomainError):
    http_status = 404


class Conflict(DomainError):
    """Someone else changed the record first (stale version) or a unique name is taken."""

    http_status = 409


class PermissionDenied(DomainError):
    http_status = 403


class WarehouseUnavailable(DomainError):
    """The team's warehouse could not be reached or did not answer in time: nothing was
    written, and trying again later may succeed (a scheduled refresh retries)."""

    http_status = 503


class UploadTooLarge(DomainError):
    """An uploaded file holds more than a setting allows (bytes once decompressed, rows or
    columns); the message names the setting. Nothing was read past the proof, nothing written."""

    http_status = 413


class StorageUnavailable(DomainError):
    """The artifact store could not take or give an artifact now (unreachable, failing): nothing
    was recorded, and trying again once an operator has fixed the store will succeed."""

    http_status = 503


class StorageFull(StorageUnavailable):
    """The artifact store has no space (or quota) left for the artifact."""


class StorageReadOnly(StorageUnavailable):
    """The artifact store refuses writes: mounted read-only, or no permission to write."""
