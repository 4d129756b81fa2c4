"""Synthetic MedCom messages for tests, demos and load runs.

    from adapter.generate import generate_messages, GeneratedMessage
    msgs = generate_messages(200, seed=7)

About 80 % of the messages are G-GOP rehabilitation plans (``ggop-0001-almen.xml``) shaped
like MedCom's example message, and about 20 % XDIS91 correspondence letters
(``xdis91-0007.xml``) that validate against MedCom's 2006/07/01 schemas.

The output depends only on ``(count, seed, municipalities table, start_date)``: the same
arguments give byte-identical messages, and a shorter batch is a prefix of a longer one
with the same seed (each message draws from its own generator seeded from the batch seed).
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from . import ggop, xdis91
from .common import Context, GeneratedMessage, load_municipalities

__all__ = ["generate_messages", "GeneratedMessage"]

GGOP_SHARE = 0.8


def generate_messages(
    count: int,
    seed: int,
    *,
    municipalities_csv: Path | None = None,
    start_date: date = date(2026, 1, 5),
) -> list[GeneratedMessage]:
    """``count`` synthetic messages, reproducible from ``seed``.

    ``municipalities_csv`` is a ``kommunekode,navn,regionskode,regionsnavn`` table (default:
    the project's ``mappings/municipalities.csv``). Discharges and letters fall in the year
    from ``start_date``.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    ctx = Context(load_municipalities(municipalities_csv), start_date)
    batch = random.Random(seed)
    messages: list[GeneratedMessage] = []
    for number in range(1, count + 1):
        is_ggop = batch.random() < GGOP_SHARE
        rng = random.Random(batch.getrandbits(64))
        if is_ggop:
            messages.append(ggop.generate(rng, ctx, number))
        else:
            messages.append(xdis91.generate(rng, ctx, number))
    return messages
