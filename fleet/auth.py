"""Who a caller is and what they may touch: passwords, bearer tokens, throttling, unit scope."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from fleet import channels, events
from fleet.audit import ActorRef
from fleet.db import utcnow
from fleet.errors import Forbidden, NotAuthenticated, Throttled
from fleet.models import AuthToken, OrgUnit, Role, UserAccount
from fleet.redis_client import RedisClient
from fleet.settings import Settings

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps the answer time the same, so a
# caller cannot tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller, as every service sees it."""

    user_id: int | None  # None for the system itself (CLI, seeding, workers)
    username: str
    unit_id: int
    unit_path: str
    roles: frozenset[Role]

    @property
    def ref(self) -> ActorRef:
        return ActorRef(id=self.user_id, name=self.username)

    @classmethod
    def system(cls, root: OrgUnit) -> Actor:
        """The system acting with administrator rights over `root` and everything below it."""
        return cls(
            user_id=None,
            username="system",
            unit_id=root.id,
            unit_path=root.path,
            roles=frozenset({Role.ADMIN}),
        )

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)


# What each role may do with each kernel resource; scope (the unit subtree) applies on top.
STAFF = frozenset({Role.ADMIN, Role.DISPATCHER, Role.APPROVER, Role.SUPERVISOR})
PERMISSIONS: dict[tuple[str, str], frozenset[Role]] = {
    ("unit", "read"): frozenset(Role),
    ("unit", "write"): frozenset({Role.ADMIN}),
    ("user", "read"): STAFF,
    ("user", "write"): frozenset({Role.ADMIN}),
    # Others' notifications (one's own are anyone's to read).
    ("notification", "read"): frozenset({Role.ADMIN}),
    ("notification", "write"): frozenset({Role.ADMIN}),
    ("vehicle", "read"): STAFF | {Role.DRIVER},
    ("vehicle", "write"): frozenset({Role.ADMIN, Role.DISPATCHER}),
    ("driver", "read"): STAFF | {Role.DRIVER},
    ("driver", "write"): frozenset({Role.ADMIN, Role.DISPATCHER}),
    ("device", "read"): STAFF,
    ("device", "write"): frozenset({Role.ADMIN, Role.DISPATCHER}),
    ("integration", "read"): frozenset({Role.ADMIN}),
    ("integration", "write"): frozenset({Role.ADMIN}),
    # the geofence domain
    ("fence", "read"): STAFF,
    ("fence", "write"): frozenset({Role.ADMIN}),
    ("calendar", "read"): frozenset(Role),
    ("calendar", "write"): frozenset({Role.ADMIN}),
    ("alert", "read"): STAFF,
    ("alert", "review"): frozenset({Role.ADMIN, Role.SUPERVISOR}),
    # the dispatch domain
    ("order", "create"): frozenset(Role),
    ("order", "approve"): frozenset({Role.ADMIN, Role.APPROVER}),
    ("order", "assign"): frozenset({Role.ADMIN, Role.DISPATCHER}),
    ("approval_rule", "write"): frozenset({Role.ADMIN}),
    ("cost", "read"): STAFF,
    ("cost", "write"): frozenset({Role.ADMIN, Role.DISPATCHER}),
    ("report", "read"): STAFF,
}


def require(actor: Actor, resource: str, action: str) -> None:
    allowed = PERMISSIONS[(resource, action)]
    if actor.roles.isdisjoint(allowed):
        raise Forbidden(f"your roles do not allow you to {action} {resource}s")


def is_root_path(unit_path: str) -> bool:
    """Whether a unit's path (`1/4/7/`) is a root unit's."""
    return unit_path.count("/") == 1


def is_root_admin(actor: Actor) -> bool:
    """An administrator of a root unit: they administer the installation (its shared calendar,
    the gateways' unknown devices and counters), and add root units."""
    return Role.ADMIN in actor.roles and is_root_path(actor.unit_path)


def units_in_scope(actor: Actor) -> Select[int]:
    """Ids of the actor's unit and every unit below it, as a subquery for `IN (...)`; for a root
    administrator, every unit, so that the root units they add are theirs to see."""
    if is_root_admin(actor):
        return select(OrgUnit.id)
    return select(OrgUnit.id).where(OrgUnit.path.startswith(actor.unit_path, autoescape=True))


def _token_digest(token: str, settings: Settings) -> str:
    return hmac.new(settings.secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def _failure_counters(
    username: str, address: str, settings: Settings
) -> list[tuple[str, int, str]]:
    """(Redis key, limit, whom it throttles) for each count a failed login adds to: the username
    from this address, the address whatever the username (a spray across usernames), and the
    username from every address (a guess spread over many addresses). One address alone cannot
    lock a user out: it is stopped at its own limit, below the username's. The keys share one hash
    tag, `{login-failures}`, so that a Redis Cluster takes the MGET and the MULTI over them (one
    slot, on one master: a few small counters, written only by failures)."""
    user = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
    return [
        (
            f"fleet:{{login-failures}}:pair:{user}:{address}",
            settings.login_max_failures,
            f"for {username!r} from your address",
        ),
        (
            f"fleet:{{login-failures}}:address:{address}",
            settings.login_max_failures_per_address,
            "from your address",
        ),
        (
            f"fleet:{{login-failures}}:user:{user}",
            settings.login_max_failures_per_username,
            f"for {username!r}",
        ),
    ]


def login(
    *,
    session: Session,
    redis: RedisClient,
    settings: Settings,
    username: str,
    password: str,
    address: str,
) -> tuple[str, int]:
    """A new bearer token and its lifetime in seconds, or NotAuthenticated / Throttled, or
    Forbidden when passwords are turned off (FLEET_LOCAL_LOGIN) for this user.

    Only failures count, in Redis over a fixed window, per username and source address, per
    address and per username (see `_failure_counters`). Once a count reaches its limit, even the
    right password is refused until the window ends, and refused before any hash is computed:
    a throttled caller costs no argon2 work. Every attempt that is not throttled costs exactly
    one hash, whether or not the username exists.
    """
    _local_login_allowed(settings, username)
    counters = _failure_counters(username, address, settings)
    counts = redis.mget([key for key, _, _ in counters])
    for (key, limit, whom), count in zip(counters, counts, strict=True):
        if int(count or 0) >= limit:
            raise Throttled(
                f"too many failed logins {whom}; try again later",
                retry_after_s=max(int(redis.ttl(key)), 1),
            )
    user = session.scalar(select(UserAccount).where(UserAccount.username == username))
    good = password_matches(user.password_hash if user else _DUMMY_HASH, password)
    if not (user and good and user.is_active):
        with redis.pipeline(transaction=True) as pipe:  # MULTI on a cluster too
            for key, _, _ in counters:
                pipe.incr(key)
                pipe.expire(key, settings.login_failure_window_s, nx=True)
            pipe.execute()
        raise NotAuthenticated("wrong username or password")
    if not settings.local_login:
        _break_glass(session, user)
    return issue_token(session=session, settings=settings, user=user)


def _local_login_allowed(settings: Settings, username: str) -> None:
    """With FLEET_LOCAL_LOGIN false, a password is taken only from a break-glass user; refused
    before any hash or count, as no password could sign the others in."""
    if not settings.local_login and username not in settings.break_glass_users:
        raise Forbidden(
            "passwords are turned off: sign in through 统一身份认证 (the identity provider)"
        )


def _break_glass(session: Session, user: UserAccount) -> None:
    """A break-glass user signs in with a password only while an administrator of a root unit."""
    path = session.scalar(select(OrgUnit.path).where(OrgUnit.id == user.unit_id))
    if Role.ADMIN.value not in user.roles or path is None or not is_root_path(path):
        raise Forbidden(
            "passwords are turned off: only a root administrator named in"
            " FLEET_BREAK_GLASS_USERS may use one"
        )


def issue_token(*, session: Session, settings: Settings, user: UserAccount) -> tuple[str, int]:
    """A new bearer token for `user` and its lifetime in seconds: what every sign-in ends with,
    a password's or the identity provider's. The token itself is never stored, its digest is."""
    token = secrets.token_urlsafe(32)
    ttl_s = settings.token_ttl_minutes * 60
    session.add(
        AuthToken(
            digest=_token_digest(token, settings),
            user_id=user.id,
            expires_at=utcnow() + timedelta(seconds=ttl_s),
        )
    )
    session.flush()
    return token, ttl_s


def authenticate(*, session: Session, settings: Settings, token: str) -> Actor:
    row = session.execute(
        select(UserAccount, OrgUnit.path)
        .join(AuthToken, AuthToken.user_id == UserAccount.id)
        .join(OrgUnit, OrgUnit.id == UserAccount.unit_id)
        .where(
            AuthToken.digest == _token_digest(token, settings),
            AuthToken.revoked_at.is_(None),
            AuthToken.expires_at > utcnow(),
            UserAccount.is_active,
        )
    ).one_or_none()
    if row is None:
        raise NotAuthenticated("the token is missing, expired or revoked")
    user, path = row
    return Actor(
        user_id=user.id,
        username=user.username,
        unit_id=user.unit_id,
        unit_path=path,
        roles=frozenset(Role(r) for r in user.roles),
    )


def logout(*, session: Session, settings: Settings, token: str) -> None:
    revoked = session.scalars(
        update(AuthToken)
        .where(AuthToken.digest == _token_digest(token, settings), AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(AuthToken.user_id)
    ).all()
    for user_id in set(revoked):
        events.announce(session, channels.REVOKED, {"type": "revoked", "user_id": user_id})


def revoke_all(*, session: Session, user_id: int) -> None:
    session.execute(
        update(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    events.announce(session, channels.REVOKED, {"type": "revoked", "user_id": user_id})
