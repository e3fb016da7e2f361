"""Filtering › Content says why a subject line or file name pattern differing from an earlier
one only in letter case repeats it (upgrade17 C4: "line 2 repeats line 1" of "cheap PILLS*"
after "Cheap pills*" left the administrator to guess)."""

from __future__ import annotations

import html

from .test_configuration import _form_fields


def test_the_repeat_says_letter_case_is_ignored(admin):
    before = admin.settings()
    data = _form_fields(admin, "/filtering/content")
    data["subject__lines"] = "Cheap pills*\r\nlottery*\r\ncheap PILLS*"
    data["filename__patterns"] = "*.exe\r\n*.EXE"
    response = admin.post("/filtering/content", data)
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert "line 3 repeats line 1: letter case is ignored" in page
    assert "line 2 repeats line 1: letter case is ignored" in page
    assert admin.settings() == before
