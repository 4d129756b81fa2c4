"""Identifier helpers for synthetic messages: GS1 GLN (EAN location numbers) and CPR numbers.

GLN: 13 digits, the last a GS1 mod-10 check digit (weights 1,3,1,3,... over the first 12
digits from the left; check = (10 - sum mod 10) mod 10). Danish numbers start with 579.

CPR: 10 digits DDMMYY + 4. The century follows from YY and the 7th digit:

    7th digit   YY 00-36   YY 37-57   YY 58-99
    0-3         19YY       19YY       19YY
    4, 9        20YY       19YY       19YY
    5-8         20YY       20YY       18YY

The modulus-11 check (weights 4,3,2,7,6,5,4,3,2,1) is no longer guaranteed for numbers issued
since 2007, so both kinds occur in real data. The last digit is odd for men, even for women.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date

GLN_PREFIX = "579"
CPR_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def gln_check_digit(first12: str) -> str:
    """The GS1 mod-10 check digit for the first 12 digits of a GLN."""
    if len(first12) != 12 or not first12.isdigit():
        raise ValueError("a GLN check digit needs exactly 12 digits")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def gln_is_valid(gln: str) -> bool:
    """True when ``gln`` has 13 digits and a correct GS1 check digit."""
    return len(gln) == 13 and gln.isdigit() and gln_check_digit(gln[:12]) == gln[12]


def _with_check(first12: str, valid: bool, wrong_offset: int) -> str:
    check = gln_check_digit(first12)
    if not valid:
        check = str((int(check) + wrong_offset) % 10)
    return first12 + check


def make_gln(rng: random.Random, valid: bool = True) -> str:
    """A random Danish GLN (579...) with a correct check digit, or a wrong one when
    ``valid`` is false."""
    first12 = GLN_PREFIX + "".join(str(rng.randrange(10)) for _ in range(9))
    return _with_check(first12, valid, rng.randint(1, 9))


def org_gln(key: str, valid: bool = True) -> str:
    """A GLN derived from an organisation key: the same key always gives the same number,
    whatever the seed. ``valid=False`` gives the same number with a wrong check digit."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    first12 = GLN_PREFIX + f"{digest % 10**9:09d}"
    return _with_check(first12, valid, 1 + digest % 9)


def corrupt_gln(gln: str) -> str:
    """The same GLN with a wrong check digit (a typo in an address book)."""
    shift = 1 + int(gln[11]) % 9  # 1..9, never a multiple of 10
    return gln[:12] + str((int(gln[12]) + shift) % 10)


def cpr_century_ok(seventh: int, birth_year: int) -> bool:
    """Whether the 7th CPR digit together with YY encodes ``birth_year``."""
    return cpr_birth_year(seventh, birth_year % 100) == birth_year


def cpr_birth_year(seventh: int, yy: int) -> int:
    """The full birth year from the 7th CPR digit and the two-digit year."""
    if seventh <= 3:
        return 1900 + yy
    if seventh in (4, 9):
        return 2000 + yy if yy <= 36 else 1900 + yy
    # 5-8
    if yy <= 57:
        return 2000 + yy
    return 1800 + yy


def cpr_birth_date(cpr: str) -> date:
    """The birth date encoded in a CPR number (raises ValueError when it is not a date)."""
    if len(cpr) != 10 or not cpr.isdigit():
        raise ValueError("a CPR number has 10 digits")
    day, month, yy, seventh = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    return date(cpr_birth_year(seventh, yy), month, day)


def cpr_mod11_ok(cpr: str) -> bool:
    """True when the CPR number passes the (old) modulus-11 check."""
    return sum(int(d) * w for d, w in zip(cpr, CPR_WEIGHTS, strict=False)) % 11 == 0


def make_cpr(
    rng: random.Random,
    birth_date: date,
    mod11_valid: bool,
    *,
    male: bool | None = None,
) -> str:
    """A CPR number for ``birth_date`` whose 7th digit encodes the century correctly.

    ``mod11_valid`` chooses whether the number passes the modulus-11 check. ``male`` fixes the
    parity of the last digit (odd = male); None leaves it to chance.
    """
    allowed = [d for d in range(10) if cpr_century_ok(d, birth_date.year)]
    if not allowed:
        raise ValueError(f"no CPR century digit encodes the year {birth_date.year}")
    head = birth_date.strftime("%d%m") + f"{birth_date.year % 100:02d}"
    for _ in range(1000):
        seventh = rng.choice(allowed)
        middle = f"{seventh}{rng.randrange(10)}{rng.randrange(10)}"
        first9 = head + middle
        partial = sum(int(d) * w for d, w in zip(first9, CPR_WEIGHTS[:9], strict=True))
        needed = (-partial) % 11  # the last digit that makes the sum divisible by 11
        if mod11_valid:
            if needed == 10:
                continue
            last = needed
            if male is not None and (last % 2 == 1) != male:
                continue
        else:
            choices = [d for d in range(10) if d != needed]
            if male is not None:
                choices = [d for d in choices if (d % 2 == 1) == male]
            last = rng.choice(choices)
        return first9 + str(last)
    raise RuntimeError("could not make a CPR number")  # pragma: no cover
