"""Validation problems in plain words: the one place pydantic's wording is translated.

The services report a bad field as ``"<field>: <pydantic message>; give <what is allowed>"``
(e.g. ``"name: String should have at least 1 character; give a name of 1 to 200 characters"``);
people read ``"Name is empty: give a name of 1 to 200 characters"``. Problems of any other shape
pass through unchanged; a prefix such as an idea's name (``"Social login: confidence: …"``) stays.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$")
_RULES: tuple[tuple[str, str], ...] = (
    (r"String should have at least 1 character", "is empty"),
    (r"String should have at least (\d+) characters", r"is too short (at least \1 characters)"),
    (r"String should have at most (\d+) characters?", r"is too long (at most \1 characters)"),
    (r"Input should be greater than or equal to (.+)", r"must be \1 or more"),
    (r"Input should be greater than (.+)", r"must be more than \1"),
    (r"Input should be less than or equal to (.+)", r"must be \1 or less"),
    (r"Input should be less than (.+)", r"must be less than \1"),
    (r"String should match pattern '\^\[a-z\]\[a-z0-9_\]\*\$'",
     "must be lower_snake_case (small letters, digits and _, starting with a letter)"),
    (r"Input should be a finite number", "must be a number"),
    (r"Input should be a valid number.*", "must be a number"),
    (r"Input should be a valid integer.*", "must be a whole number"),
    (r"Input should be a valid date.*", "must be a date (YYYY-MM-DD)"),
    (r"Input should be a valid boolean.*", "must be yes or no"),
    (r"Input should be a valid string.*", "must be text"),
    (r"Input should be a valid list.*", "must be a list"),
    (r"Input should be (.+)", r"must be \1"),
    (r"Field required", "is required"),
    (r"List should have at least (\d+) items?.*", r"needs at least \1"),
    (r"List should have at most (\d+) items?.*", r"allows at most \1"),
    (r"Extra inputs are not permitted", "is not a field that can be set"),
)


_PERCENT_FIELDS = ("guardrail_margins", "prior_lift_mean", "prior_lift_sd")
"""Fields the app's forms take in percent (the API in fractions): their bounds read in %."""
_BOUND = re.compile(r"(more than|less than|be) (-?\d+(?:\.\d+)?)(?= or|$)")


def _bounds_in_percent(message: str) -> str:
    """``"must be less than 1"`` → ``"must be less than 100%"``."""
    return _BOUND.sub(lambda m: f"{m[1]} {float(m[2]) * 100:g}%", message)


FIELD_LABELS = {
    "weights": "traffic split", "sd": "standard deviation", "mde": "minimum detectable effect",
    "daily_traffic": "daily eligible users", "sql": "SQL",
}
"""Field names that read better as the forms label them."""


def field_name(loc: str) -> str:
    """A field path for people: ``"variants.1.weight"`` → ``"Variant 2 weight"``,
    ``"weights"`` → ``"Traffic split"``."""
    words: list[str] = []
    for part in loc.split("."):
        if part.isdigit() and words:
            words[-1] = words[-1].removesuffix("s")
            words.append(str(int(part) + 1))
        else:
            words.append(FIELD_LABELS.get(part, part.replace("_", " ")))
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def plain(problem: str) -> str:
    """One problem in plain words (see the module docstring)."""
    where, sep, rest = problem.partition(": ")
    if not sep:
        return problem
    if not _FIELD.match(where):
        return f"{where}: {plain(rest)}"
    message, _, hint = rest.partition("; give ")
    for pattern, replacement in _RULES:
        if re.fullmatch(pattern, message):
            message = re.sub(pattern, replacement, message)
            break
    else:
        return f"{field_name(where)}: {message}" + (f"; give {hint}" if hint else "")
    if where.split(".")[0] in _PERCENT_FIELDS:
        message = _bounds_in_percent(message)
    text = f"{field_name(where)} {message}"
    return f"{text}: give {hint}" if hint else text
