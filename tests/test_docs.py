"""The README and docs/ stay true to the code they describe: the settings page is the Settings
model's, every link lands, and the README's set-up commands are where CI looks for them."""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from fimls.editor_settings import ROOT, SETTINGS_PAGE, settings_markdown

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
# A front door, not a reference: the reference is docs/.
README_MOST_LINES = 200


def test_the_settings_page_is_what_the_settings_model_derives():
    assert SETTINGS_PAGE.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is out of date with fimls/settings.py: run `python -m fimls.editor_settings`"
    )


def test_the_settings_page_names_every_setting_and_what_a_change_does():
    from fimls.settings import RELOAD_FIELDS, Settings

    page = settings_markdown()
    for name, field in Settings.model_fields.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{field.alias}` |"))
        assert row.endswith("| reload |") == (name in RELOAD_FIELDS), row


def _without_code(text: str) -> str:
    """Markdown outside fenced blocks and inline code, where a link is a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_anchor(match) for match in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M)}


def _links(page: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_in_the_docs_lands_on_a_file_and_heading_of_the_repository(page):
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z]+:", link):
            continue  # an address outside the repository
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link}: no such heading")
    assert not broken, broken


def _ci_command(name: str) -> str:
    """The one command line in the code block after `<!-- ci:NAME -->`, as .ci/run reads it."""
    lines = README.read_text(encoding="utf-8").splitlines()
    block = lines[lines.index(f"<!-- ci:{name} -->") + 1:]
    assert block[0].startswith("```"), f"the line after <!-- ci:{name} --> opens no code block"
    assert not block[1].startswith("```") and block[2].startswith("```"), f"ci:{name} must be one line"
    return block[1]


@pytest.mark.parametrize("name", ["install", "test"])
def test_the_readme_set_up_commands_name_scripts_and_modules_that_exist(name):
    words = shlex.split(_ci_command(name).replace("&&", " "))
    for before, word in zip(words, words[1:]):
        if before == "-m" and word.startswith("fimls."):
            assert importlib.util.find_spec(word) is not None, word
    for word in words:
        if word.endswith(".py"):
            assert (ROOT / word).is_file(), word


def test_the_readme_stays_a_front_door():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MOST_LINES, f"README.md has {lines} lines; move reference material into docs/"
