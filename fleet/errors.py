"""Domain errors shared by every package, and the one table that maps them to HTTP statuses."""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error a service raises on purpose.

    `field` names the request field at fault, when there is one, so a client can show the error
    next to it.
    """

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(FleetError):
    code = "not_found"


class Invalid(FleetError):
    code = "invalid"


class Rejected(Invalid):
    """Input refused as a whole for the problems listed (each a dict naming where and why), such
    as a statement file with bad rows."""

    def __init__(self, message: str, *, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems


class Conflict(FleetError):
    code = "conflict"


class Forbidden(FleetError):
    code = "forbidden"


class NotAuthenticated(FleetError):
    code = "not_authenticated"


class Throttled(FleetError):
    code = "throttled"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreUnavailable(FleetError):
    code = "store_unavailable"


# The one place where errors become HTTP statuses; the app factory installs it.
HTTP_STATUS: dict[type[FleetError], int] = {
    NotFound: 404,
    Invalid: 422,
    Conflict: 409,
    Forbidden: 403,
    NotAuthenticated: 401,
    Throttled: 429,
    StoreUnavailable: 503,
}


def http_status(error: FleetError) -> int:
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500
