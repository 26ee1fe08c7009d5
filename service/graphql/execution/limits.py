"""Request limits and validation rules: depth, aliases, tokens, and Hasura's leniencies.

`validation_rules()` is graphql-core's standard rule set minus `NoUnusedVariablesRule`
(Hasura accepts operations that declare variables they do not use, and dashboards rely
on it) plus the depth and alias limits. The rule classes are created once per engine and
reused, so Strawberry's validation cache keeps hitting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql.validation import ASTValidationRule, NoUnusedVariablesRule, specified_rules
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule


def validation_rules(*, max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    """The engine's validation rules for the given limits."""
    standard = tuple(rule for rule in specified_rules if rule is not NoUnusedVariablesRule)
    return (*standard, max_depth_rule(max_depth, None), max_aliases_rule(max_aliases))


class EngineValidationRules(SchemaExtension):
    """Use the engine's rules (built once) for every operation."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], max_tokens: int) -> None:
        super().__init__()
        self.rules = rules
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = self.rules
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield


def engine_extensions(settings: Any, rules: tuple[type[ASTValidationRule], ...]) -> list[Any]:
    """Extension factories for a schema: limits, then the parser and validation caches."""
    from strawberry.extensions import ParserCache, ValidationCache

    from service.graphql.sql.mutations import MutationTransaction

    cache_size = settings.parser_cache_size
    return [
        lambda: EngineValidationRules(rules, settings.max_tokens),
        lambda: ParserCache(maxsize=cache_size),
        lambda: ValidationCache(maxsize=cache_size),
        MutationTransaction,
    ]
