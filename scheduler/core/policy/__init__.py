"""The policy file: who a user's stakeholders are, how often to meet them, and when.

A policy is a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file validated into :class:`Policy`.
Unknown keys are errors. :func:`load_policy_text` validates one file's text and raises
:class:`~scheduler.core.errors.PolicyError` carrying *every* problem found, each with the file, the
line, the field path (``stakeholders[2].tier``) and a message that says how to fix it. Reading
the files themselves is I/O and lives in :mod:`scheduler.app.policies` (``load_policy``,
``validate_policy_files``).

The package, by concern:

- :mod:`~scheduler.core.policy.schema`: the pydantic models (:class:`Policy` and its sections);
- :mod:`~scheduler.core.policy.fields`: field types and their parsers (durations, hours, zones…);
- :mod:`~scheduler.core.policy.lines`: where each path is written (YAML nodes, a TOML scanner);
- :mod:`~scheduler.core.policy.issues`: validation and syntax errors as ``PolicyIssue``;
- :mod:`~scheduler.core.policy.load`: text in, :class:`Policy` (or every issue) out;
- :mod:`~scheduler.core.policy.limits`: :class:`PolicyLimits` on untrusted input (size, nesting,
  values with YAML aliases expanded, texts, stakeholders, duration ranges) and their checks;
- :mod:`~scheduler.core.policy.safe_yaml`: YAML checked on its event stream, then composed once;
- :mod:`~scheduler.core.policy.zones`: IANA region names only, with hints for ``EST``, ``GMT+1``…
"""

from __future__ import annotations

from scheduler.core.policy.fields import Blackout as Blackout
from scheduler.core.policy.fields import Busy as Busy
from scheduler.core.policy.fields import Duration as Duration
from scheduler.core.policy.fields import Email as Email
from scheduler.core.policy.fields import Hours as Hours
from scheduler.core.policy.fields import MeetingLength as MeetingLength
from scheduler.core.policy.fields import Mode as Mode
from scheduler.core.policy.fields import OptionalDelay as OptionalDelay
from scheduler.core.policy.fields import TimeZone as TimeZone
from scheduler.core.policy.fields import Weekdays as Weekdays
from scheduler.core.policy.fields import Window as Window
from scheduler.core.policy.limits import PolicyLimits
from scheduler.core.policy.lines import DocPath as DocPath
from scheduler.core.policy.lines import LineIndex, line_index
from scheduler.core.policy.lines import PolicyFormat as PolicyFormat
from scheduler.core.policy.load import (
    LoadResult,
    load_policy_text,
    policy_to_data,
    validate_policy_text,
)
from scheduler.core.policy.schema import (
    Availability,
    CalendarRef,
    Etiquette,
    MeetingDefaults,
    Owner,
    Policy,
    Stakeholder,
    StakeholderDefaults,
    Tier,
)

__all__ = [
    "Availability",
    "CalendarRef",
    "Etiquette",
    "LineIndex",
    "LoadResult",
    "MeetingDefaults",
    "Owner",
    "Policy",
    "PolicyLimits",
    "Stakeholder",
    "StakeholderDefaults",
    "Tier",
    "line_index",
    "load_policy_text",
    "policy_to_data",
    "validate_policy_text",
]
