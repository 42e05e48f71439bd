"""One way to page a list: the window a request asks for (`Listing`, from `?limit=&offset=`), the
rows of a statement in that window with the total, and the answer's envelope (`Page[T]` in
`fleet.schemas` documents it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

AnySelect = Select[*tuple[Any, ...]]
S = TypeVar("S", bound=AnySelect)


@dataclass(frozen=True, slots=True)
class Listing:
    limit: int = 50
    offset: int = 0

    def total(self, session: Session, stmt: AnySelect) -> int:
        """How many rows the statement has in all."""
        counted = select(func.count()).select_from(stmt.order_by(None).subquery())
        return int(session.scalar(counted) or 0)

    def window(self, stmt: S) -> S:
        """The statement cut to this window (in the statement's order)."""
        return stmt.limit(self.limit).offset(self.offset)

    def page(self, session: Session, stmt: AnySelect) -> tuple[Sequence[Any], int]:
        """The statement's objects in this window, and how many rows it has in all."""
        return session.scalars(self.window(stmt)).all(), self.total(session, stmt)

    def answer(self, items: Iterable[Any], total: int) -> dict[str, Any]:
        """The envelope of a page: its items, the total, and the window asked for."""
        return {"items": list(items), "total": total, "limit": self.limit, "offset": self.offset}
