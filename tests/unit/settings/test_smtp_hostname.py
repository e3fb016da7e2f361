"""smtp.hostname is the gateway's fully qualified name: a single label or localhost, which
receivers refuse in EHLO, is refused when an administrator sets it (settings findings 16,
section 7); null, the machine's name, stays the default whatever that name is."""

import pytest

from shared.settings import SettingError, defaults, refused_values, validate_changes
from shared.settings_store import apply_changes, load

RFC = "(RFC 5321 §4.1.1.1, §2.3.5); null uses the machine's name"


def lines(value):
    with pytest.raises(SettingError) as info:
        validate_changes(defaults(), {"smtp.hostname": value})
    return info.value.lines()


@pytest.mark.parametrize("value, shown", [
    ("localhost", "localhost"), ("LocalHost.", "LocalHost"),
    ("localhost.localdomain", "localhost.localdomain"), ("mx.localhost", "mx.localhost"),
])
def test_localhost_is_refused_saying_why(value, shown):
    assert lines(value) == [
        "smtp.hostname: must be the gateway's fully qualified domain name (mail.example.com), "
        f"not {shown}: localhost names every machine to itself, and many receivers refuse "
        f"it in EHLO {RFC}"]


@pytest.mark.parametrize("value, shown", [("mm", "mm"), ("mail.", "mail"),
                                          ("bücher", "xn--bcher-kva")])
def test_a_single_label_is_refused_saying_why(value, shown):
    assert lines(value) == [
        "smtp.hostname: must be the gateway's fully qualified domain name (mail.example.com), "
        f"not the single label {shown}: EHLO takes the fully qualified name {RFC}"]


@pytest.mark.parametrize("value, kept", [("mx.example.com", "mx.example.com"),
                                         ("gw.test", "gw.test"),
                                         ("mylocalhost.example", "mylocalhost.example"),
                                         # a real name whose first label is localhost
                                         # (review17 C2)
                                         ("localhost.corp.example", "localhost.corp.example"),
                                         (None, None)])
def test_a_fully_qualified_name_and_null_are_taken(value, kept):
    assert validate_changes(defaults(), {"smtp.hostname": value}) == {"smtp.hostname": kept}


def test_a_localhost_an_older_release_stored_is_listed_and_blocks_no_other_edit(tmp_path):
    from shared import db

    conn = db.connect(tmp_path / "mailmoat.db")
    db.migrate(conn)
    conn.execute("INSERT INTO settings (key, value, updated_at) VALUES "
                 "('smtp.hostname', '\"localhost\"', 0)")
    conn.commit()
    assert apply_changes(conn, {"smtp.port": 2525}) == {"smtp.port": (25, 2525)}
    assert load(conn)["smtp.hostname"] == "localhost"
    assert [key for key, _rule in refused_values(load(conn))] == ["smtp.hostname"]
    conn.close()
