"""Configuration › Diagnostics (exploratory finding diagnostics 12: the options read
Off/On error/All, the guide's warning was missing and the page did not say where the files
go; finding 7: nor how much they take).

- Each option reads as the guide's §3 "Configuring queue file save and SMTP conversation
  logging" says it, and saving one still stores the schema's value.
- The guide's warning, with "support" for the vendor's Technical Support.
- Where the files are, how much the folder holds now, that they hold whole messages and when
  they are deleted (logging.retention_days).
"""

from __future__ import annotations

import html
import re

from shared.events import Action

from .test_configuration import _form_fields

URL = "/configuration/diagnostics"
GUIDE_OPTIONS = {
    "diagnostics__queue_file_save": ["Disable", "Save on error", "Save all"],
    "diagnostics__conversation__inbound": [
        "Disable", "Save log on error", "Log all inbound traffic"],
    "diagnostics__conversation__outbound": [
        "Disable", "Save log on error", "Log all outbound traffic"],
    "diagnostics__conversation__errors": [
        "All SMTP errors", "Communication error", "Protocol error", "Local processing error",
        "Unsupported operation"],
    "diagnostics__conversation__data": [
        "Ignore DATA stream", "Summarize DATA stream", "Echo DATA stream"],
}
WARNING = ("Do not change this setting unless you are instructed by support to do so. "
           "Changing the setting can result in undesirable system behavior.")


def _options(page: str) -> dict[str, list[tuple[str, str]]]:
    """{select name: [(value, text), ...]} of the page."""
    found = {}
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        found[name] = [(value, html.unescape(text.strip())) for value, text in re.findall(
            r'<option[^>]*value="([^"]*)"[^>]*>([^<]*)</option>', body)]
    return found


def _text(page: str) -> str:
    """The page's text as a reader sees it: tags out, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_options_read_as_the_guide_and_save_the_schema_values(admin):
    page = admin.get(URL).get_data(as_text=True)
    options = _options(page)
    assert {name: [text for _value, text in pairs] for name, pairs in options.items()} \
        == GUIDE_OPTIONS
    assert [value for value, _text in options["diagnostics__queue_file_save"]] == [
        "off", "on_error", "all"]

    data = _form_fields(admin, URL)
    data["diagnostics__queue_file_save"] = "on_error"
    data["diagnostics__conversation__errors"] = "local"
    assert admin.post(URL, data).status_code == 302
    stored = admin.settings()
    assert stored["diagnostics.queue_file_save"] == "on_error"
    assert stored["diagnostics.conversation.errors"] == "local"
    [event] = admin.events(Action.OBJECT_MODIFIED)
    assert event["data"]["changes"]["diagnostics.queue_file_save"] == ["off", "on_error"]


def test_the_tab_warns_and_says_where_the_files_are_and_what_they_take(admin, home):
    admin.set(logging__retention_days=14)
    (home.diagnostics / "inbound-20260101T000000-c1.log").write_bytes(b"x" * (1 << 20))
    (home.diagnostics / "queuefiles").mkdir()
    (home.diagnostics / "queuefiles" / "0000000000AA.eml").write_bytes(b"y" * (1 << 19))
    text = _text(admin.get(URL).get_data(as_text=True))
    assert WARNING in text
    assert (f"Saved queue files and SMTP conversation logs go to {home.diagnostics} (the "
            f"queue files to its queuefiles/ folder). It now holds 2 file(s), 1.5 MB.") in text
    assert ("These files hold whole messages, which are personal data, and are deleted "
            "after logging.retention_days (14 days;") in text


def test_the_tab_says_when_the_files_are_kept_for_ever_or_cannot_be_read(admin, home):
    admin.set(logging__retention_days=0)
    home.diagnostics.rmdir()
    home.diagnostics.write_text("not a folder")
    text = _text(admin.get(URL).get_data(as_text=True))
    assert "deleted after logging.retention_days (0: never;" in text
    assert "folder). It cannot be read now: Not a directory." in text
