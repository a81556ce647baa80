"""Editor set-ups carry the Settings model's fields and defaults, so the two cannot drift."""

import json
import shutil
import subprocess
import zipfile

import pytest

from conftest import IN_CI

from fimls.context.languages import _BY_SUFFIX
from fimls.editor_settings import EDITORS, VSCODE_PACKAGE, render_vscode_package, user_defaults
from fimls.settings import parse_settings

_defaults = user_defaults
VSCODE = VSCODE_PACKAGE.parent


def test_jetbrains_template_has_one_place_for_settings_and_no_defaults_in_it():
    folder = EDITORS / "jetbrains" / "fimls"
    assert sorted(p.name for p in folder.iterdir()) == ["settings.json", "template.json"]
    settings = json.loads((folder / "settings.json").read_text())
    assert settings == {"fimls": {}}  # the server's defaults apply, $FIMLS_MODEL included
    assert parse_settings(settings["fimls"]).model_dump(by_alias=True)["maxNewTokens"] == _defaults()["maxNewTokens"]


def test_jetbrains_template_starts_fimls_over_stdio_for_languages_fimls_knows():
    template = json.loads((EDITORS / "jetbrains" / "fimls" / "template.json").read_text())
    assert template["id"] == "fimls"
    assert template["programArgs"]["default"] == "fimls --stdio"
    for mapping in template["fileTypeMappings"]:
        for pattern in mapping["fileType"]["patterns"]:
            assert pattern.startswith("*.") and pattern[1:] in _BY_SUFFIX, pattern


def test_vscode_contributes_every_setting_with_the_settings_models_type_default_and_bounds():
    package = json.loads(VSCODE_PACKAGE.read_text())
    expected = render_vscode_package(json.loads(VSCODE_PACKAGE.read_text()))
    assert package == expected, "run `python -m fimls.editor_settings` to regenerate"
    properties = package["contributes"]["configuration"]["properties"]
    for name, default in _defaults().items():
        assert properties[f"fimls.{name}"]["default"] == default, name
    assert properties["fimls.maxNewTokens"]["minimum"] == 1
    assert properties["fimls.ranker"]["enum"] == ["fused", "symbols", "imports", "recent", "jaccard", "bm25", "none"]
    commands = {c["command"] for c in package["contributes"]["commands"]}
    assert {"fimls.restart", "fimls.toggle", "fimls.showStats", "fimls.showOutput"} <= commands


def _npm(*args: str) -> str:
    done = subprocess.run(["npm", *args], cwd=VSCODE, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def vscode_dependencies():
    if shutil.which("npm") is None or not (VSCODE / "node_modules" / "vscode-languageclient").is_dir():
        (pytest.fail if IN_CI else pytest.skip)("the VS Code extension's dependencies are missing: run `npm ci --prefix editors/vscode`")


def test_vscode_extension_compiles_and_its_logic_passes_unit_tests(vscode_dependencies):
    report = _npm("test")
    assert "# fail 0" in report and "# pass 13" in report, report


def test_vscode_extension_packages_into_a_vsix(vscode_dependencies, tmp_path):
    vsix = tmp_path / "fimls.vsix"
    _npm("exec", "--", "vsce", "package", "--out", str(vsix))
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert "extension/out/src/extension.js" in names and "extension/out/src/logic.js" in names
    assert any(name.startswith("extension/node_modules/vscode-languageclient/") for name in names)
    assert not any(name.startswith("extension/src/") or "/test/" in name.split("node_modules")[0] for name in names)
    assert manifest["contributes"]["configuration"]["properties"]["fimls.model"]["default"] == _defaults()["model"]
