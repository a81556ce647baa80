"""Editor set-up files derived from the Settings model, so that no editor can drift from it.

`python -m fimls.editor_settings` rewrites them; `tests/test_editor_configs.py` fails when a file
differs from what this module derives.
"""

from __future__ import annotations

import json
from pathlib import Path

from fimls.settings import DEFAULT_MODEL, Settings

EDITORS = Path(__file__).resolve().parent.parent / "editors"
VSCODE_PACKAGE = EDITORS / "vscode" / "package.json"
JETBRAINS_FOLDER = EDITORS / "jetbrains" / "fimls"

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
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path)
