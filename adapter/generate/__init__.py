"""Synthetic MedCom messages for tests, demos and load runs.

    from adapter.generate import generate_messages, GeneratedMessage
    msgs = generate_messages(200, seed=7)

About 80 % of the messages are G-GOP rehabilitation plans (``ggop-0001-almen.xml``) shaped
like MedCom's example message, and about 20 % XDIS91 correspondence letters
(``xdis91-0007.xml``) that validate against MedCom's 2006/07/01 schemas.

The plans follow the national figures of seed S3 (2023): plan types as 199,115 almen, 14,805
specialiseret and 630 rehabilitering plans, and among the almen plans the primary diagnoses
S3 counts (acquired brain injury 11,156, multiple sclerosis 346, Parkinson's disease 186);
``catalog.PLAN_TYPE_VOLUMES_2023`` and ``catalog.ALMEN_DIAGNOSIS_VOLUMES_2023`` hold them, and
``mix.plan_mix(messages)`` compares a batch with them (``bench/levels.py`` prints it).

``GeneratedMessage.facts`` holds the values a message was built from (plain JSON types):

- both kinds: ``child`` (under 18 by the CPR birth date), ``age``, ``cpr``, ``birth_date``,
  ``municipality_code`` (four digits, from the table), ``receiver_identifier`` (as written:
  "461" or "0461"), ``region_code``, ``diagnoses`` (SKS codes, primary first), ``discharge``,
  ``sent``, ``letter_id``, ``envelope_id``, ``sender_gln``, ``receiver_gln``,
  ``sender_identifier``, ``sender_identifier_code``, ``invalid_glns`` (copy-receiver GLNs
  written with a wrong check digit), ``heading``;
- G-GOP: ``plan_type``, ``statistical_code``, ``consent`` ("ja"/"nej"), ``gp_deselected``,
  ``deadline_text`` (None when ``RehabilitationDeadline`` is left out), ``deadline_kind``
  (sooner | later | standard | none | vague | absent: compared with the 7-day rule),
  ``deadline_days`` and ``deadline_bound`` (latest | earliest | approx), ``discharge`` as
  "YYYY-MM-DDThh:mm" (also when the plan only has ``ExpectedEndText``, given in
  ``expected_end_text``), ``admission``, ``diagnosis_group``, ``diagnosis_category`` (abi |
  ms | parkinson | other, the categories S3 counts), ``diagnosis_type_code``, ``icf``
  ([code, gradient] pairs), ``complications``, ``cognitive``, ``coordination`` (jobcenter,
  skole, hjemmepleje, socialforvaltning), ``relatives``, ``cc_receivers``; ``heading`` is None;
- XDIS91: the plan keys are None; ``heading`` is the letter's heading (the full fixed
  children's heading, or the subject), ``subject`` the ``Subject`` as written (at most 70
  characters), ``children_heading``, ``priority``, ``episode_status``, ``reply_requested``,
  ``reply_by``; ``discharge`` is a date ("YYYY-MM-DD") when the letter names one, else None.

The output depends only on ``(count, seed, municipalities table, start_date)``: the same
arguments give byte-identical messages, and a shorter batch is a prefix of a longer one
with the same seed (each message draws from its own generator seeded from the batch seed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from itertools import islice
from pathlib import Path

from . import ggop, xdis91
from .common import Context, GeneratedMessage, load_municipalities

__all__ = ["GeneratedMessage", "generate_messages", "iter_messages"]

GGOP_SHARE = 0.8


def iter_messages(
    seed: int,
    *,
    municipalities_csv: Path | None = None,
    start_date: date = date(2026, 1, 5),
) -> Iterator[GeneratedMessage]:
    """Synthetic messages without end, reproducible from ``seed``: the first ``n`` are
    ``generate_messages(n, seed)``."""
    ctx = Context(load_municipalities(municipalities_csv), start_date)
    batch = random.Random(seed)
    number = 0
    while True:
        number += 1
        is_ggop = batch.random() < GGOP_SHARE
        rng = random.Random(batch.getrandbits(64))
        if is_ggop:
            yield ggop.generate(rng, ctx, number)
        else:
            yield xdis91.generate(rng, ctx, number)


def generate_messages(
    count: int,
    seed: int,
    *,
    municipalities_csv: Path | None = None,
    start_date: date = date(2026, 1, 5),
) -> list[GeneratedMessage]:
    """``count`` synthetic messages, reproducible from ``seed``.

    ``municipalities_csv`` is a ``kommunekode,navn,regionskode,regionsnavn`` table (default:
    the project's ``adapter/mappings/municipalities.csv``). Discharges and letters fall in the year
    from ``start_date``.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    return list(islice(iter_messages(seed, municipalities_csv=municipalities_csv,
                                     start_date=start_date), count))
