import pytest

from fimls.completion import TEMPLATE_RESERVE, fit_budgets
from fimls.settings import DEFAULT_MODEL, Settings, SettingsError, parse_settings


def test_defaults_and_camel_case_aliases(monkeypatch):
    monkeypatch.delenv("FIMLS_MODEL", raising=False)
    assert parse_settings(None).model == DEFAULT_MODEL
    settings = parse_settings({"maxNewTokens": 12, "prefixTokens": 100, "gptqBackend": "gptq_torch", "topP": 0.9})
    assert (settings.max_new_tokens, settings.prefix_tokens, settings.gptq_backend, settings.top_p) == (12, 100, "gptq_torch", 0.9)
    assert settings.device == "auto" and settings.temperature == 0.0


def test_fimls_model_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("FIMLS_MODEL", "/models/local")
    assert Settings().model == "/models/local"


@pytest.mark.parametrize(
    "options, field",
    [
        ({"maxNewTokens": 0}, "maxNewTokens"),
        ({"device": "tpu"}, "device"),
        ({"temperature": "hot"}, "temperature"),
        ({"modle": "typo"}, "modle"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(options, field):
    with pytest.raises(SettingsError) as error:
        parse_settings(options)
    assert error.value.problems and error.value.problems[0].startswith(f"{field}:")


def test_budgets_shrink_to_fit_the_window():
    settings = Settings(prefixTokens=3000, suffixTokens=1000, contextTokens=2000, maxNewTokens=64)
    assert fit_budgets(settings, 16384) == (3000, 1000, 2000)
    prefix, suffix, context = fit_budgets(settings, 2048)
    assert prefix + suffix + context + 64 + settings.speculative_tokens + TEMPLATE_RESERVE <= 2048
    assert abs(prefix - 3 * suffix) <= 3 and abs(context - 2 * suffix) <= 2  # in proportion, to rounding
