"""The service's settings: one prefix, Hasura's names where they exist, all documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings

CONFIGURATION = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_in_the_configuration_page() -> None:
    text = CONFIGURATION.read_text()
    documented = set(re.findall(r"`(EVENT_DETECTOR_[A-Z_]+|HASURA_GRAPHQL_[A-Z_]+)`", text))
    for name, field in Settings.model_fields.items():
        if field.exclude:
            continue
        variable = f"EVENT_DETECTOR_{name.upper()}"
        assert variable in documented, f"{variable} is not in docs/configuration.md"
        aliases = getattr(field.validation_alias, "choices", []) or []
        for alias in aliases:
            assert alias in documented, f"{alias} is not in docs/configuration.md"


def test_settings_read_the_prefix_and_hasuras_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EVENT_DETECTOR_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("HASURA_GRAPHQL_ADMIN_SECRET", "from-hasura")
    monkeypatch.setenv("EVENT_DETECTOR_WEBHOOK_SECRET_HEADER", "X-Hook-Secret")
    monkeypatch.setenv("EVENT_DETECTOR_ROLLUP_INTERVAL", "5")
    monkeypatch.setenv("OBSERVABILITY_CAPTURE_PAYLOAD", "false")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVENT_DETECTOR_EVENTS_DIR", "functions")
    settings = Settings()
    assert settings.database_url == "sqlite:///x.db"
    assert settings.admin_secret == "from-hasura"
    assert settings.webhook_secret_header == "x-hook-secret"
    assert settings.rollup_interval == 5.0
    assert settings.events_dir == tmp_path / "functions", "resolved once, at start"
    assert settings.observability_environ["OBSERVABILITY_CAPTURE_PAYLOAD"] == "false"
    assert Settings(database_url="sqlite:///y.db").database_url == "sqlite:///y.db"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("webhook_secret_header", "bad header:", "not a valid HTTP header name"),
        ("rollup_interval", -1, "greater than or equal to 0"),
        ("retention_batch_size", 0, "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_rejected_naming_the_field(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{field: value})
    assert field in str(caught.value) and message in str(caught.value)
