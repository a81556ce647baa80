"""The settings' order (docs/clients.md) as plain functions: each layer over the one below, key by
key, and a folder's own settings for the documents in it with the window's shared ones kept."""

from fimls.lsp.server import layered_settings
from fimls.lsp.serving import WINDOW_FIELDS, CompletionService
from fimls.settings import Settings, parse_settings


def test_an_answer_goes_over_what_is_below_it_key_by_key():
    below = {"maxNewTokens": 7, "contextTokens": 100}
    assert layered_settings(below, {"maxNewTokens": 9}) == {"maxNewTokens": 9, "contextTokens": 100}
    # Left out or null: the value below holds (a removed setting reverts to it).
    assert layered_settings(below, {"maxNewTokens": None}) == below
    # Null or {}: a section the client holds nothing for changes nothing.
    assert layered_settings(below, None) == below == layered_settings(below, {})
    assert layered_settings(below, "nonsense") == "nonsense"  # for parse_settings to refuse
    assert layered_settings(below, {}) is not below


def test_a_document_is_served_with_its_innermost_folders_settings_but_the_windows_shared_ones(tmp_path):
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    window = parse_settings({"model": "/models/a", "maxNewTokens": 20, "cacheSize": 5, "excludeGlobs": ["*.key"]})
    service = CompletionService(window)
    service.folder_settings = {
        str(outer.resolve()): parse_settings({"maxNewTokens": 30, "model": "/models/b"}),
        str(inner.resolve()): parse_settings({"maxNewTokens": 40, "enabledLanguages": ["go"], "cacheSize": 9, "excludeGlobs": []}),
    }
    assert service.settings_for(str(tmp_path / "elsewhere.py")) is window
    assert service.settings_for(None) is window
    outer_settings = service.settings_for(str(outer / "a.py"))
    assert (outer_settings.max_new_tokens, outer_settings.model) == (30, "/models/a")
    inner_settings = service.settings_for(str(inner / "b.py"))
    assert (inner_settings.max_new_tokens, inner_settings.enabled_languages) == (40, ["go"])
    assert all(getattr(inner_settings, name) == getattr(window, name) for name in WINDOW_FIELDS)
    assert not service.allowed("b.py", "python", inner_settings) and service.allowed("b.py", "go", inner_settings)
    assert isinstance(inner_settings, Settings)
