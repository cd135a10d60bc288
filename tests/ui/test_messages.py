"""ui.messages: the registry's pydantic problems read in plain words; other problems unchanged."""

from __future__ import annotations

import pytest

from ui.messages import field_name, plain


@pytest.mark.parametrize(("problem", "expected"), [
    ("name: String should have at least 1 character; give a name of 1 to 200 characters",
     "Name is empty: give a name of 1 to 200 characters"),
    ("name: String should have at most 200 characters; give a name of 1 to 200 characters",
     "Name is too long (at most 200 characters): give a name of 1 to 200 characters"),
    ("variants.1.weight: Input should be a finite number; give 2 to 20 variants, control first",
     "Variant 2 weight must be a number: give 2 to 20 variants, control first"),
    ("planned_sample_size: Input should be greater than 0; give a whole number of units",
     "Planned sample size must be more than 0: give a whole number of units"),
    ("alpha: Input should be less than 0.5; give a number strictly between 0 and 0.5",
     "Alpha must be less than 0.5: give a number strictly between 0 and 0.5"),
    ("analysis_mode: Input should be 'fixed' or 'sequential'",
     "Analysis mode must be 'fixed' or 'sequential'"),
    ("Social login: confidence: Input should be less than or equal to 100; give 0 to 100",
     "Social login: Confidence must be 100 or less: give 0 to 100"),
    # fields the forms take in percent read their bounds in percent
    ("guardrail_margins.refund_rate: Input should be less than 1; give a margin",
     "Guardrail margins refund rate must be less than 100%: give a margin"),
    ("guardrail_margins.refund_rate: Input should be greater than 0",
     "Guardrail margins refund rate must be more than 0%"),
    ("prior_lift_sd: Input should be less than or equal to 0.5",
     "Prior lift sd must be 50% or less"),
    # names of metrics and warehouse definitions
    ("name: String should match pattern '^[a-z][a-z0-9_]*$'; give a name of 1 to 200 characters",
     "Name must be lower_snake_case (small letters, digits and _, starting with a letter): "
     "give a name of 1 to 200 characters"),
    ("sql: give one SELECT statement (it starts with 'DELETE')",
     "SQL: give one SELECT statement (it starts with 'DELETE')"),
])
def test_messages_plain_translates_pydantic_wording(problem: str, expected: str) -> None:
    assert plain(problem) == expected


def test_messages_plain_leaves_other_problems_alone() -> None:
    text = "'Checkout' needs a decision (ship, dont_ship or iterate) to complete."
    assert plain(text) == text
    assert plain("Someone else changed this experiment: reload it") == (
        "Someone else changed this experiment: reload it")


def test_messages_field_name_reads_nested_locations() -> None:
    assert field_name("target_segment") == "Target segment"
    assert field_name("variants.0.name") == "Variant 1 name"
    assert field_name("input") == "Input"


def test_messages_field_name_uses_the_forms_labels() -> None:
    assert field_name("weights") == "Traffic split"
    assert field_name("mde") == "Minimum detectable effect"
    assert plain("weights: the shares must add up to 100% (they add up to 90%)") == (
        "Traffic split: the shares must add up to 100% (they add up to 90%)")
