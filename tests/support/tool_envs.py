"""Tool environments the tool-use tests import by path (``tool_envs:Travel``)."""

from __future__ import annotations

from typing import Any

FLIGHTS = {
    ("Paris", "Rome"): [{"number": "AZ 123", "price": 90}, {"number": "AF 9", "price": 120}],
    ("Oslo", "Rome"): [{"number": "SK 7", "price": 150}],
}


class Travel:
    """A stateful booking system: search, book, cancel; ``state()`` is what gets checked."""

    def __init__(self, seats: int = 2) -> None:
        self.seats = seats
        self.booked: list[str] = []

    def search_flights(self, origin: str, destination: str) -> list[dict[str, Any]]:
        return FLIGHTS.get((origin, destination), [])

    def book(self, number: str) -> dict[str, Any]:
        if self.seats <= 0:
            return {"ok": False, "error": "no seats left"}
        self.seats -= 1
        self.booked.append(number)
        return {"ok": True, "number": number}

    def cancel(self, number: str) -> dict[str, Any]:
        self.booked = [b for b in self.booked if b != number]
        return {"ok": True}

    def state(self) -> dict[str, Any]:
        return {"booked": list(self.booked)}


class Broken:
    """An environment whose backend is down: its tool raises (an environment error)."""

    def lookup(self, key: str) -> str:
        raise RuntimeError("the inventory database is down")


def booked_once(*, text: str, state: dict[str, Any], calls: list[str]) -> float:
    return 1.0 if len(state.get("booked", [])) == 1 else 0.0
