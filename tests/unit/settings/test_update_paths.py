"""liveupdate.source is an https/http URL or a local directory (SPEC §3), and
liveupdate.drop_dir and forwarding.ca_file are absolute paths; each may stay empty, its
default (settings findings 16, section 7: ftp://x and relative paths were accepted)."""

import pytest

from shared.settings import SettingError, defaults, validate_changes

SOURCE_RULE = ("liveupdate.source: must be an https:// or http:// URL, or a local directory's "
               "absolute path (starting with /)")


def lines(changes):
    with pytest.raises(SettingError) as info:
        validate_changes(defaults(), changes)
    return info.value.lines()


@pytest.mark.parametrize("value", ["ftp://x", "relative", "updates/dir", "https://",
                                   "http:///path", "file:///srv/updates", "https://a b/",
                                   "https://[::1/"])
def test_a_source_that_is_no_url_or_absolute_path_is_refused(value):
    assert lines({"liveupdate.source": value}) == [SOURCE_RULE]


@pytest.mark.parametrize("value", ["", "https://updates.example.com/mailmoat/",
                                   "HTTP://10.0.0.5:8080/defs", "https://[2001:db8::5]/",
                                   "/srv/mailmoat/updates"])
def test_a_url_a_directory_or_nothing_is_a_source(value):
    assert validate_changes(defaults(), {"liveupdate.source": value}) == {
        "liveupdate.source": value}


@pytest.mark.parametrize("key", ["liveupdate.drop_dir", "forwarding.ca_file"])
@pytest.mark.parametrize("value", ["relative", "relative.pem", "./x", "~/ca.pem"])
def test_a_relative_path_is_refused(key, value):
    assert lines({key: value}) == [
        f"{key}: must be an absolute path (starting with /), or empty"]


@pytest.mark.parametrize("key, value", [("liveupdate.drop_dir", "/var/spool/mailmoat-drop"),
                                        ("forwarding.ca_file", "/etc/ssl/siem-ca.pem"),
                                        ("liveupdate.drop_dir", ""),
                                        ("forwarding.ca_file", "")])
def test_an_absolute_path_or_nothing_is_taken(key, value):
    assert validate_changes(defaults(), {key: value}) == {key: value}
