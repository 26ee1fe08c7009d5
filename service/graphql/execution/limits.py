"""Request limits and validation rules: depth, aliases, tokens, and Hasura's leniencies.

`validation_rules()` is graphql-core's standard rule set minus `NoUnusedVariablesRule`
(Hasura accepts operations that declare variables they do not use, and dashboards rely
on it) plus the depth and alias limits. The rule classes are created once per engine and
reused, so Strawberry's validation cache keeps hitting.

Where Hasura is stricter than graphql-core: a variable sent but not declared by the
operation is refused (`undeclared_variables`), where graphql-core ignores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import DocumentNode, OperationDefinitionNode
from graphql.validation import ASTValidationRule, NoUnusedVariablesRule, specified_rules
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule


def validation_rules(*, max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    """The engine's validation rules for the given limits."""
    standard = tuple(rule for rule in specified_rules if rule is not NoUnusedVariablesRule)
    return (*standard, max_depth_rule(max_depth, None), max_aliases_rule(max_aliases))


def undeclared_variables(
    document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None
) -> list[str]:
    """Names in `variables` the operation to run does not declare, in the order sent.

    Empty when the operation cannot be told (graphql-core reports that itself).
    """
    if not variables:
        return []
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return []
    declared = {d.variable.name.value for d in operations[0].variable_definitions or ()}
    return [name for name in variables if name not in declared]
