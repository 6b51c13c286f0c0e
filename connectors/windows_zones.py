"""Windows time zone names (what Exchange and Graph report) to IANA names and back.

The mapping is CLDR's ``windowsZones.xml`` "001" (territory-neutral) entries, as shipped by
``tzlocal.windows_tz`` (generated from CLDR by tzlocal's ``update_windows_mapping.py``; tzlocal is a
small pure-Python dependency of the ``microsoft`` extra). We import it rather than hand-copy the
~140 entries so updates arrive with the package.

Graph also accepts and sometimes returns IANA names and the literal ``UTC``, so
:func:`to_iana` passes valid IANA names through unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

__all__ = ["to_iana", "to_windows", "zone"]

#: Names Graph uses for UTC that CLDR does not list under "001" with this spelling.
_UTC_ALIASES = frozenset({"utc", "coordinated universal time", "gmt", "etc/utc", "z"})


@lru_cache(maxsize=512)
def to_iana(name: str) -> str | None:
    """The IANA zone for a Windows (``Pacific Standard Time``) or IANA (``Europe/Paris``) name.

    Args:
        name: a zone name as Graph reports it in ``timeZone`` / ``workingHours.timeZone.name``.

    Returns:
        An IANA name that :class:`zoneinfo.ZoneInfo` accepts, or ``None`` when the name is unknown
        (for example ``Customized Time Zone`` for a custom Exchange zone).
    """
    cleaned = name.strip()
    if cleaned.lower() in _UTC_ALIASES:
        return "UTC"
    mapped = win_tz.get(cleaned)
    if mapped is None:
        # Case-insensitive second chance: some tenants report "pacific standard time".
        lowered = cleaned.lower()
        mapped = next((v for k, v in win_tz.items() if k.lower() == lowered), None)
    candidate = mapped or cleaned
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return candidate


def to_windows(iana: str) -> str | None:
    """The Windows zone name for an IANA name (``Europe/London`` -> ``GMT Standard Time``).

    Returns:
        The Windows name, or ``None`` when CLDR has no mapping for the zone.
    """
    if iana.strip().lower() in _UTC_ALIASES:
        return "UTC"
    return tz_win.get(iana)


def zone(name: str) -> ZoneInfo:
    """A :class:`ZoneInfo` for a Windows or IANA name.

    Raises:
        ValueError: the name is neither a known Windows nor a valid IANA zone name.
    """
    iana = to_iana(name)
    if iana is None:
        raise ValueError(f"unknown time zone name {name!r}")
    return ZoneInfo(iana)
