"""Time zones in a policy: IANA region names only, with a hint that names the likely region.

``EST`` is fixed UTC-5 all year, so a New York stakeholder written as ``EST`` would be an hour
off all summer; ``GMT+1`` is fixed too; ``US/Eastern`` is an old alias kept for backward
compatibility. zoneinfo accepts all of them, so the policy loader refuses them itself:

- a region name (``Europe/London``, ``America/Argentina/Buenos_Aires``) or ``UTC`` is accepted;
- an abbreviation (``EST``, ``CET``, ``IST``…) names the regions it usually means;
- a fixed offset (``GMT+1``, ``UTC-05:00``, ``Etc/GMT-1``) names regions at that offset;
- an old alias (``US/Eastern``, ``Japan``, ``GB``) names the region it stands for;
- anything else gets "did you mean" over region names.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo

from scheduler.core.durations import SpecError

__all__ = ["check_zone"]

#: The first part of every IANA region name.
REGION_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
#: Accepted although they are not regions: plain UTC.
_UTC = frozenset({"UTC", "Etc/UTC"})

_NEW_YORK = ("America/New_York", "America/Toronto", "America/Detroit")
_CHICAGO = ("America/Chicago", "America/Winnipeg", "America/Mexico_City")
_DENVER = ("America/Denver", "America/Edmonton", "America/Phoenix")
_LOS_ANGELES = ("America/Los_Angeles", "America/Vancouver", "America/Tijuana")
_CENTRAL_EUROPE = ("Europe/Paris", "Europe/Berlin", "Europe/Madrid")
_EASTERN_EUROPE = ("Europe/Athens", "Europe/Helsinki", "Europe/Bucharest")
_SYDNEY = ("Australia/Sydney", "Australia/Melbourne", "Australia/Brisbane")

#: Abbreviations and the old POSIX-style zones (``EST5EDT``), upper-cased, to what they mean.
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("EST", "EDT", "EST5EDT", "ET"), _NEW_YORK),
    **dict.fromkeys(("CST", "CDT", "CST6CDT", "CT"), (*_CHICAGO, "Asia/Shanghai")),
    **dict.fromkeys(("MST", "MDT", "MST7MDT", "MT"), _DENVER),
    **dict.fromkeys(("PST", "PDT", "PST8PDT", "PT"), _LOS_ANGELES),
    **dict.fromkeys(("AKST", "AKDT"), ("America/Anchorage",)),
    **dict.fromkeys(("HST", "HDT"), ("Pacific/Honolulu",)),
    **dict.fromkeys(("AST", "ADT"), ("America/Halifax", "America/Puerto_Rico")),
    **dict.fromkeys(("NST", "NDT"), ("America/St_Johns",)),
    **dict.fromkeys(("CET", "CEST", "MET", "MEST"), _CENTRAL_EUROPE),
    **dict.fromkeys(("EET", "EEST"), _EASTERN_EUROPE),
    **dict.fromkeys(("WET", "WEST"), ("Europe/Lisbon", "Atlantic/Canary")),
    "BST": ("Europe/London",),
    "IST": ("Asia/Kolkata", "Europe/Dublin", "Asia/Jerusalem"),
    "MSK": ("Europe/Moscow",),
    "SAST": ("Africa/Johannesburg",),
    "WAT": ("Africa/Lagos",),
    "EAT": ("Africa/Nairobi",),
    "PKT": ("Asia/Karachi",),
    "JST": ("Asia/Tokyo",),
    "KST": ("Asia/Seoul",),
    "HKT": ("Asia/Hong_Kong",),
    "SGT": ("Asia/Singapore",),
    "AWST": ("Australia/Perth",),
    **dict.fromkeys(("ACST", "ACDT"), ("Australia/Adelaide", "Australia/Darwin")),
    **dict.fromkeys(("AEST", "AEDT"), _SYDNEY),
    **dict.fromkeys(("NZST", "NZDT"), ("Pacific/Auckland",)),
    "BRT": ("America/Sao_Paulo",),
    "ART": ("America/Argentina/Buenos_Aires",),
}

#: tzdata's backward-compatible aliases outside the region areas (from tzdata's ``backward``).
_ALIASES: dict[str, str] = {
    "Brazil/Acre": "America/Rio_Branco",
    "Brazil/DeNoronha": "America/Noronha",
    "Brazil/East": "America/Sao_Paulo",
    "Brazil/West": "America/Manaus",
    "Canada/Atlantic": "America/Halifax",
    "Canada/Central": "America/Winnipeg",
    "Canada/Eastern": "America/Toronto",
    "Canada/Mountain": "America/Edmonton",
    "Canada/Newfoundland": "America/St_Johns",
    "Canada/Pacific": "America/Vancouver",
    "Canada/Saskatchewan": "America/Regina",
    "Canada/Yukon": "America/Whitehorse",
    "Chile/Continental": "America/Santiago",
    "Chile/EasterIsland": "Pacific/Easter",
    "Cuba": "America/Havana",
    "Egypt": "Africa/Cairo",
    "Eire": "Europe/Dublin",
    "GB": "Europe/London",
    "GB-Eire": "Europe/London",
    "Hongkong": "Asia/Hong_Kong",
    "Iceland": "Atlantic/Reykjavik",
    "Iran": "Asia/Tehran",
    "Israel": "Asia/Jerusalem",
    "Jamaica": "America/Jamaica",
    "Japan": "Asia/Tokyo",
    "Kwajalein": "Pacific/Kwajalein",
    "Libya": "Africa/Tripoli",
    "Mexico/BajaNorte": "America/Tijuana",
    "Mexico/BajaSur": "America/Mazatlan",
    "Mexico/General": "America/Mexico_City",
    "NZ": "Pacific/Auckland",
    "NZ-CHAT": "Pacific/Chatham",
    "Navajo": "America/Denver",
    "PRC": "Asia/Shanghai",
    "Poland": "Europe/Warsaw",
    "Portugal": "Europe/Lisbon",
    "ROC": "Asia/Taipei",
    "ROK": "Asia/Seoul",
    "Singapore": "Asia/Singapore",
    "Turkey": "Europe/Istanbul",
    "US/Alaska": "America/Anchorage",
    "US/Aleutian": "America/Adak",
    "US/Arizona": "America/Phoenix",
    "US/Central": "America/Chicago",
    "US/East-Indiana": "America/Indiana/Indianapolis",
    "US/Eastern": "America/New_York",
    "US/Hawaii": "Pacific/Honolulu",
    "US/Indiana-Starke": "America/Indiana/Knox",
    "US/Michigan": "America/Detroit",
    "US/Mountain": "America/Denver",
    "US/Pacific": "America/Los_Angeles",
    "US/Samoa": "Pacific/Pago_Pago",
    "W-SU": "Europe/Moscow",
}

#: Other names for UTC itself; GMT also for the UK (which is on BST all summer).
_GMT = frozenset(
    {"GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0"}
    | {"Etc/GMT-0", "Etc/Greenwich"}
)
_OTHER_UTC = frozenset({"UCT", "Universal", "Zulu", "Etc/UCT", "Etc/Universal", "Etc/Zulu"})

#: Regions at each standard offset (minutes east of UTC), for fixed-offset hints.
_AT_OFFSET: dict[int, tuple[str, ...]] = {
    -11 * 60: ("Pacific/Pago_Pago",),
    -10 * 60: ("Pacific/Honolulu",),
    -9 * 60: ("America/Anchorage",),
    -8 * 60: _LOS_ANGELES,
    -7 * 60: _DENVER,
    -6 * 60: _CHICAGO,
    -5 * 60: (*_NEW_YORK[:2], "America/Bogota"),
    -4 * 60: ("America/Halifax", "America/Caracas", "America/Santiago"),
    -210: ("America/St_Johns",),
    -3 * 60: ("America/Sao_Paulo", "America/Argentina/Buenos_Aires"),
    -2 * 60: ("America/Noronha",),
    -1 * 60: ("Atlantic/Azores",),
    0: ("Europe/London", "Europe/Lisbon", "Africa/Abidjan"),
    1 * 60: (*_CENTRAL_EUROPE[:2], "Africa/Lagos"),
    2 * 60: (*_EASTERN_EUROPE[:2], "Africa/Cairo"),
    3 * 60: ("Europe/Moscow", "Europe/Istanbul", "Asia/Riyadh"),
    210: ("Asia/Tehran",),
    4 * 60: ("Asia/Dubai",),
    270: ("Asia/Kabul",),
    5 * 60: ("Asia/Karachi", "Asia/Tashkent"),
    330: ("Asia/Kolkata",),
    345: ("Asia/Kathmandu",),
    6 * 60: ("Asia/Dhaka",),
    7 * 60: ("Asia/Bangkok", "Asia/Jakarta"),
    8 * 60: ("Asia/Singapore", "Asia/Shanghai", "Australia/Perth"),
    9 * 60: ("Asia/Tokyo", "Asia/Seoul"),
    570: ("Australia/Adelaide", "Australia/Darwin"),
    10 * 60: _SYDNEY,
    11 * 60: ("Pacific/Noumea",),
    12 * 60: ("Pacific/Auckland", "Pacific/Fiji"),
    13 * 60: ("Pacific/Tongatapu",),
    14 * 60: ("Pacific/Kiritimati",),
}
# GMT+1, UTC-05:00, UT+5:30, +01:00; Etc/GMT-1 (POSIX style: the sign is inverted).
_OFFSET = re.compile(r"(?i)(etc/)?(?:gmt|utc|ut)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?")
_EXAMPLE = "use a name like Europe/London"


@functools.cache
def _regions() -> tuple[str, ...]:
    return tuple(
        sorted(z for z in zoneinfo.available_timezones() if z.split("/", 1)[0] in REGION_AREAS)
    )


# What a zone name looks like. Checked before zoneinfo sees it: zoneinfo looks names up as
# packages of the tzdata distribution, and "a.a.a…" thousands of parts long recursed until a
# RecursionError.
_NAME = re.compile(r"[A-Za-z0-9_+-]{1,40}(?:/[A-Za-z0-9_+-]{1,40}){0,3}")


def _loads(name: str) -> bool:
    if not _NAME.fullmatch(name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, RecursionError):
        return False
    return True


def _choices(names: tuple[str, ...]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _offset_hint(value: str, match: re.Match[str]) -> str:
    etc, sign, hours, minutes = match.groups()
    east = int(hours) * 60 + int(minutes or 0)
    if (sign == "-") != bool(etc):  # Etc/GMT-1 is one hour east of UTC
        east = -east
    regions = _AT_OFFSET.get(east)
    hint = f"like {_choices(regions)}" if regions else "like Europe/London"
    return (
        f"{value!r} is a fixed offset from UTC, which ignores summer time; write the IANA "
        f"region name of the place, {hint}"
    )


def _problem(name: str, value: str) -> str | None:
    """Why ``name`` is not an accepted zone (``None``: it is accepted)."""
    area = name.split("/", 1)[0]
    if (area in REGION_AREAS or name in _UTC) and _loads(name):
        return None
    for prefix in ("posix/", "right/"):
        if name.startswith(prefix) and name[len(prefix) :].split("/", 1)[0] in REGION_AREAS:
            return f"{value!r} is not an IANA time zone; write '{name[len(prefix) :]}'"
    if name in _GMT:
        return (
            f"{value!r} is UTC all year round (no summer time), not a region; write "
            f"'Europe/London' for the UK or 'UTC' for UTC"
        )
    if name in _OTHER_UTC:
        return f"{value!r} is another name for UTC; write 'UTC'"
    if name in _ALIASES:
        return f"{value!r} is an old alias, not an IANA region name; write '{_ALIASES[name]}'"
    regions = _ABBREVIATIONS.get(name.upper())
    if regions is not None:
        return (
            f"{value!r} is an abbreviation, not an IANA region name, and does not follow the "
            f"place's summer time; write the region of the place, like {_choices(regions)}"
        )
    match = _OFFSET.fullmatch(name)
    if match is not None:
        return _offset_hint(value, match)
    everything = _regions()
    by_lower = {z.lower(): z for z in everything}
    close = [by_lower[name.lower()]] if name.lower() in by_lower else []
    close = close or difflib.get_close_matches(name, everything, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else _EXAMPLE
    if _loads(name):
        return f"{value!r} is not an IANA region name; {hint}"
    return f"{value!r} is not an IANA time zone; {hint}"


def check_zone(value: str) -> str:
    """``value`` stripped when it is an IANA region name (or ``UTC``).

    Raises:
        SpecError: anything else, with a hint naming the likely region names.
    """
    name = value.strip()
    problem = _problem(name, value)
    if problem is not None:
        raise SpecError(problem)
    return name
