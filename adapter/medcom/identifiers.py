"""Danish identifier checks: GLN (GS1 mod-10), CPR (date part, modulus 11),
municipality codes. Pure functions, no patient data in any error."""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

_DIGITS13 = re.compile(r"^[0-9]{13}$")
_DIGITS10 = re.compile(r"^[0-9]{10}$")


def gln_check_digit(first12: str) -> int:
    """GS1 mod-10 check digit for the first 12 digits of a GLN."""
    total = 3 * sum(map(int, first12[::-2])) + sum(map(int, first12[-2::-2]))  # weights 3, 1, 3, … from the right
    return (10 - total % 10) % 10


def gln_is_wellformed(value: str) -> bool:
    return bool(_DIGITS13.match(value or ""))


@lru_cache(maxsize=4096)  # a GLN names an organisation (never a citizen), and the same few recur
def gln_is_valid(value: str) -> bool:
    return gln_is_wellformed(value) and gln_check_digit(value[:12]) == int(value[12])


def cpr_birth_date(cpr: str) -> dt.date | None:
    """The birth date a CPR number encodes (century from the 7th digit), or None."""
    if not _DIGITS10.match(cpr or ""):
        return None
    day, month, yy, d7 = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if d7 <= 3:
        century = 1900
    elif d7 in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:  # 5-8
        century = 2000 if yy <= 57 else 1800
    try:
        return dt.date(century + yy, month, day)
    except ValueError:
        return None


def cpr_mod11_ok(cpr: str) -> bool:
    if not _DIGITS10.match(cpr or ""):
        return False
    weights = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
    return sum(int(c) * w for c, w in zip(cpr, weights, strict=False)) % 11 == 0


def cpr_sex(cpr: str) -> str | None:
    if not _DIGITS10.match(cpr or ""):
        return None
    return "female" if int(cpr[9]) % 2 == 0 else "male"


def normalise_municipality_code(value: str) -> str | None:
    """MedCom often writes 461 for 0461: municipality codes are four digits."""
    v = (value or "").strip()
    if not v.isdigit() or len(v) > 4:
        return None
    return v.zfill(4)
