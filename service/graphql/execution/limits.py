"""Request limits and validation rules: depth, aliases, tokens, and Hasura's leniencies.

`validation_rules()` is graphql-core's standard rule set minus `NoUnusedVariablesRule`
(Hasura accepts operations that declare variables they do not use, and dashboards rely
on it) plus the depth and alias limits. The rule classes are created once per engine and
reused, so Strawberry's validation cache keeps hitting.
"""

from __future__ import annotations

from graphql.validation import ASTValidationRule, NoUnusedVariablesRule, specified_rules
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule


def validation_rules(*, max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    """The engine's validation rules for the given limits."""
    standard = tuple(rule for rule in specified_rules if rule is not NoUnusedVariablesRule)
    return (*standard, max_depth_rule(max_depth, None), max_aliases_rule(max_aliases))
