"""Editor set-ups carry the Settings model's fields and defaults, so the two cannot drift."""

import json
from pathlib import Path

from fimls.context.languages import _BY_SUFFIX
from fimls.settings import DEFAULT_MODEL, Settings, parse_settings

EDITORS = Path(__file__).resolve().parent.parent / "editors"


def _defaults() -> dict:
    return Settings(model=DEFAULT_MODEL).model_dump(by_alias=True)


def test_jetbrains_options_and_settings_are_the_settings_model_with_its_defaults():
    folder = EDITORS / "jetbrains" / "fimls"
    options = json.loads((folder / "initializationOptions.json").read_text())
    settings = json.loads((folder / "settings.json").read_text())
    assert options == _defaults()
    assert settings == {"fimls": _defaults()}
    assert parse_settings(options).model_dump(by_alias=True) == _defaults()  # valid as sent


def test_jetbrains_template_starts_fimls_over_stdio_for_languages_fimls_knows():
    template = json.loads((EDITORS / "jetbrains" / "fimls" / "template.json").read_text())
    assert template["id"] == "fimls"
    assert template["programArgs"]["default"] == "fimls --stdio"
    for mapping in template["fileTypeMappings"]:
        for pattern in mapping["fileType"]["patterns"]:
            assert pattern.startswith("*.") and pattern[1:] in _BY_SUFFIX, pattern
