"""Files derived from the Settings model, so that no editor and no page can drift from it: the VS
Code extension's settings, the JetBrains template's settings file and docs/settings.md.

`python -m fimls.editor_settings` rewrites them; `tests/test_editor_configs.py` and
`tests/test_docs.py` fail when a file differs from what this module derives.
"""

from __future__ import annotations

import json
from pathlib import Path

from fimls.settings import DEFAULT_MODEL, RELOAD_FIELDS, Settings

ROOT = Path(__file__).resolve().parent.parent
EDITORS = ROOT / "editors"
VSCODE_PACKAGE = EDITORS / "vscode" / "package.json"
JETBRAINS_FOLDER = EDITORS / "jetbrains" / "fimls"
SETTINGS_PAGE = ROOT / "docs" / "settings.md"

# JSON-schema keywords that VS Code's settings editor understands and validates.
_VSCODE_KEYWORDS = ("type", "default", "enum", "minimum", "maximum", "exclusiveMinimum", "minLength", "items")


def user_defaults() -> dict:
    """Every setting with the value a user gets without configuring anything."""
    return Settings(model=DEFAULT_MODEL).model_dump(by_alias=True)


def vscode_properties() -> dict:
    """`contributes.configuration.properties` entries (`fimls.<camelCaseName>`) for each setting."""
    schema = Settings.model_json_schema(by_alias=True)["properties"]
    defaults = user_defaults()
    properties = {}
    for name, field in schema.items():
        entry = {key: field[key] for key in _VSCODE_KEYWORDS if key in field}
        entry["default"] = defaults[name]
        # A folder of a multi-root workspace may set its own value; the server asks for its folder's.
        entry["scope"] = "resource"
        entry["markdownDescription"] = field["description"]
        properties[f"fimls.{name}"] = entry
    return properties


def render_vscode_package(package: dict) -> dict:
    """`package` with its settings section replaced by the Settings model's; other keys kept."""
    configuration = package["contributes"]["configuration"]
    extension_only = {
        key: value for key, value in configuration["properties"].items() if key.startswith("fimls.server.")
        or key == "fimls.enable"
    }
    configuration["properties"] = {**extension_only, **vscode_properties()}
    return package


def jetbrains_files() -> dict[str, dict]:
    """The template's one place for settings, empty: LSP4IJ answers `workspace/configuration`
    from it, which the server takes as the whole truth, so a default written here would hide the
    server's own (`$FIMLS_MODEL`) and a second copy (initialization options) would be overridden."""
    return {"settings.json": {"fimls": {}}}


_SETTINGS_PAGE_HEAD = """\
# Settings

<!-- Generated from fimls/settings.py by `python -m fimls.editor_settings`; tests/test_docs.py
fails when this file differs from what the Settings model derives. Edit the model, not this page. -->

One typed model, `fimls/settings.py`, holds every setting; editors send the camelCase names
below. VS Code shows them as `fimls.<name>`, Neovim takes them in `init_options` (or
`settings = { fimls = { ... } }`), the JetBrains template in its *Configuration* tab under
`fimls`, Emacs in `fimls-initialization-options`; any other client sends them as
`initializationOptions` or answers `workspace/configuration` for the section `fimls`. Which of
those wins when a client sends several is in [clients.md](clients.md).

Every setting has a default, so no configuration at all is a valid one. An invalid value (or a
`debounceMinMs` above `debounceMaxMs`) is refused with a `window/showMessage` naming the field and
the reason, and the previous values stay. `fimls/stats` answers the settings in force.

*On change* says what a change does:

- **reload**: the backend is opened again (for `local` and `inprocess` the model is loaded again,
  with progress). Changes that arrive close together (an editor writing several settings at
  once), or while a load runs, are served by one load, and a change back to what is loaded loads
  nothing.
- **next request**: applies from the next request on, on every backend, without a reload. With
  `backend: server`, `speculativeTokens` and `maxCachedTokens` are the server's own business (a
  client cannot set them there); `promptLayout` applies, since fimls renders the prompt.
- **when a window starts the daemon**: the shared daemon's own options, passed by the window that
  starts it; a daemon already running keeps its own until it exits ([daemon.md](daemon.md)).

"""


def _code(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value:
        return f"`{value}`"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _type(field: dict) -> str:
    """A field's JSON-schema type in words, with its bounds."""
    if "enum" in field:
        return "one of " + ", ".join(_code(value) for value in field["enum"])
    if field.get("type") == "array":
        items = field.get("items", {})
        if "enum" in items:
            return "list of " + ", ".join(_code(value) for value in items["enum"])
        return f"list of {items.get('type', 'value')}s"
    bounds = []
    if "exclusiveMinimum" in field:
        bounds.append(f"> {_number(field['exclusiveMinimum'])}")
    elif "minimum" in field:
        bounds.append(f"≥ {_number(field['minimum'])}")
    if "maximum" in field:
        bounds.append(f"≤ {_number(field['maximum'])}")
    if field.get("minLength") == 1:
        bounds.append("not empty")
    return ", ".join([field.get("type", "value"), *bounds])


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# Read by the window that starts the daemon, as the daemon's own arguments: a change reaches a
# daemon that is already running only when it next starts.
_AT_DAEMON_START = frozenset({"max_resident_models", "daemon_idle_exit_s"})


def _on_change(name: str) -> str:
    if name in RELOAD_FIELDS:
        return "reload"
    return "when a window starts the daemon" if name in _AT_DAEMON_START else "next request"


def settings_markdown() -> str:
    """docs/settings.md: every setting with its type, default, meaning and what a change does."""
    schema = Settings.model_json_schema(by_alias=True)["properties"]
    defaults = user_defaults()
    aliases = {field.alias or name: name for name, field in Settings.model_fields.items()}
    rows = ["| setting | type | default | meaning | on change |", "|---|---|---|---|---|"]
    for name, field in schema.items():
        default = _code(defaults[name])
        if name == "model":
            # The default is read from the environment when the settings are made.
            default = f"`$FIMLS_MODEL`, else {default}"
        cells = (f"`{name}`", _type(field), default, field["description"], _on_change(aliases[name]))
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return _SETTINGS_PAGE_HEAD + "\n".join(rows) + "\n"


def dumps(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_all() -> list[Path]:
    written = []
    package = json.loads(VSCODE_PACKAGE.read_text(encoding="utf-8"))
    VSCODE_PACKAGE.write_text(dumps(render_vscode_package(package)), encoding="utf-8")
    written.append(VSCODE_PACKAGE)
    for name, document in jetbrains_files().items():
        path = JETBRAINS_FOLDER / name
        path.write_text(dumps(document), encoding="utf-8")
        written.append(path)
    SETTINGS_PAGE.write_text(settings_markdown(), encoding="utf-8")
    written.append(SETTINGS_PAGE)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path)
