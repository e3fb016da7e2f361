"""The report service (shared.report*): every summary figure, every detail filter, the search,
time zones, CSV/JSON/text formats. Events are seeded through the event writer, never SQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo

import pytest

from shared import db
from shared.clock import FakeClock
from shared.events import COPY_NOT_KEPT, CATEGORY_OF, Action, Category, EventWriter
from shared.report import (ACTION_GROUPS, DetailFilter, count_detail, detail_page,
                           disposition_counts, iter_detail, summarise)
from shared.report_format import (DETAIL_COLUMNS, SUMMARY_COLUMNS, csv_lines, detail_parts,
                                  detail_record, escape_cell, json_lines, summary_records,
                                  summary_text, text_lines)
from shared.report_time import (BadTime, ReportRange, csv_file_name, iso_local, make_range,
                                parse_time)

T0 = 1_800_000_000.0          # 2027-01-15 08:00:00 UTC, a whole hour
UTC = zoneinfo.ZoneInfo("UTC")


class Seeder:
    """Events written by the real EventWriter at chosen times."""

    def __init__(self, path):
        self.path = path
        self.clock = FakeClock(T0)
        self.writer = EventWriter(path, "core", self.clock)

    def at(self, when: float, action: Action, **fields):
        self.clock.value = when
        return self.writer.record(action, **fields)

    def done(self):
        self.writer.flush()


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "mailmoat.db"
    conn = db.connect(path)
    db.migrate(conn)
    yield path, conn
    conn.close()


@pytest.fixture
def seed(database):
    seeder = Seeder(database[0])
    yield seeder
    seeder.writer.close()


def whole_day() -> ReportRange:
    return ReportRange(T0 - 12 * 3600, T0 + 12 * 3600, "UTC")


def seed_traffic(seed: Seeder) -> None:
    """A day with something for every summary figure (counts chosen to be distinct)."""
    t = T0 - 3600 + 17.5                      # partial and whole hours both get events
    for i in range(23):
        seed.at(t + i * 60, Action.ACCEPTED, queue_id=f"q{i}", size=1000 + i,
                sender="a@example.com", recipients=["b@example.net", "c@example.net"])
    for i in range(45):
        seed.at(t + i * 50, Action.DELIVERED, queue_id=f"q{i % 23}",
                recipients=["b@example.net"], data={"next_hop": "mx"})
    for i in range(3):                         # bounces etc. Mailmoat made: delivered only
        seed.at(t + 100 + i, Action.DELIVERED, queue_id=f"g{i}", recipients=["a@example.com"],
                data={"generated": True})
        seed.at(t + 100 + i, Action.COMPLETED, queue_id=f"g{i}", data={"generated": True})
    seed.at(t + 200, Action.ACCEPTED, queue_id="bogus", size=999_999,
            data={"generated": True})        # never counted as accepted, whoever wrote it
    for action, n in ((Action.REJECTED, 4), (Action.BOUNCED, 2), (Action.DROPPED, 5),
                      (Action.DELIVERY_FAILED, 6), (Action.COMPLETED, 20),
                      (Action.QUARANTINED, 7), (Action.SPAM, 8), (Action.SUSPECTED_SPAM, 9),
                      (Action.REPUTATION_SPAM, 10), (Action.HELD, 1), (Action.FORWARDED, 2)):
        for i in range(n):
            seed.at(t + 300 + i, action, queue_id=f"{action}-{i}")
    seed.at(t + 400, Action.ENCRYPTED_CONTAINER, result="deleted", data={"file": "a.zip"})
    seed.at(t + 401, Action.ENCRYPTED_CONTAINER, result="deleted", data={"file": "b.zip"})
    seed.at(t + 402, Action.ENCRYPTED_CONTAINER, result="logged", data={"file": "c.zip"})
    viruses = [("EICAR-Test-File", Action.FILE_DELETED, 12), ("Gergana.182", Action.FILE_REPAIRED, 8),
               ("XM.Laroux.A", Action.VIRUS_LOGGED, 2), ("EICAR-Test-File", Action.VIRUS_LOGGED, 1)]
    for name, action, n in viruses:
        for i in range(n):
            seed.at(t + 500 + i, action, data={"virus": name, "file": f"f{i}.doc"})
    seed.at(t + 600, Action.FILE_DELETED, info="W32.InfoOnly")  # older writers: name in info
    for pattern, n in (("*hot stock*", 3), ("viagra", 1)):
        for i in range(n):
            seed.at(t + 700 + i, Action.SUBJECT_BLOCKED, subject=f"HOT STOCK {i}",
                    data={"pattern": pattern})
    for name, n in (("invoice.exe", 4), ("setup.scr", 2)):
        for i in range(n):
            seed.at(t + 800 + i, Action.ATTACHMENT_DELETED, data={"file": name})
    seed.at(T0 + 13 * 3600, Action.ACCEPTED, size=5)   # outside the range
    seed.at(T0 - 13 * 3600, Action.ACCEPTED, size=5)
    seed.done()


def test_summary_every_figure(database, seed):
    seed_traffic(seed)
    _, conn = database
    summary = summarise(conn, whole_day(), premium=True)
    kb = (sum(1000 + i for i in range(23)) + 512) // 1024
    assert summary.section("message").rows == [
        ("Messages Accepted", 23), ("Data Accepted (KB)", kb), ("Messages Rejected", 4),
        ("Messages Bounced", 2), ("Messages Dropped", 5), ("Messages Delivered", 48),
        ("Message Delivery Failures", 6), ("Messages Completed", 23),
        ("Encrypted Files Deleted", 2), ("Messages Quarantined", 7)]
    assert summary.section("premium").rows == [
        ("Spam Detected", 8), ("Suspected Spam Detected", 9), ("Reputation Spam Detected", 10)]
    assert summary.section("premium").total == 27
    assert summary.section("infection").rows == [
        ("Infections Logged", 3), ("Infections Repaired", 8), ("Infections Deleted", 13)]
    assert summary.section("infection").total == 24
    assert summary.section("viruses").rows == [
        ("EICAR-Test-File", 13), ("Gergana.182", 8), ("XM.Laroux.A", 2), ("W32.InfoOnly", 1)]
    assert summary.section("viruses").total == summary.section("infection").total
    assert summary.section("subjects_blocked").rows == [("*hot stock*", 3), ("viagra", 1)]
    assert summary.section("attachments_deleted").rows == [("invoice.exe", 4),
                                                           ("setup.scr", 2)]


def test_generated_mail_is_delivered_never_accepted(database, seed):
    seed.at(T0 + 10, Action.ACCEPTED, size=2048)
    seed.at(T0 + 20, Action.DELIVERED, recipients=["x@example.com"])
    seed.at(T0 + 30, Action.DELIVERED, recipients=["sender@example.com"],
            data={"generated": True, "next_hop": "mx"})          # a bounce
    seed.at(T0 + 40, Action.ACCEPTED, size=4096, data={"generated": True})
    seed.done()
    summary = summarise(database[1], ReportRange(T0, T0 + 3600), premium=False)
    assert summary.figure("message", "Messages Accepted") == 1
    assert summary.figure("message", "Data Accepted (KB)") == 2
    assert summary.figure("message", "Messages Delivered") == 2


def test_premium_section_only_when_premium_is_enabled(database, seed):
    seed_traffic(seed)
    keys = [s.key for s in summarise(database[1], whole_day(), premium=False).sections]
    assert keys == ["message", "infection", "viruses", "subjects_blocked",
                    "attachments_deleted"]


def brute_force(conn, start, end) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in iter_detail(conn, DetailFilter(ReportRange(start, end))):
        counts[row.action] = counts.get(row.action, 0) + 1
    return counts


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_summary_is_exact_at_partial_hours_in_any_zone(database, seed, zone):
    """Roll-ups for whole hours + raw events at the edges = a count of the events."""
    for i in range(300):
        seed.at(T0 + i * 97.3, Action.DELIVERED if i % 3 else Action.REJECTED)
    seed.done()
    conn = database[1]
    local = dt.datetime.fromtimestamp(T0, zoneinfo.ZoneInfo(zone))
    rng = make_range((local + dt.timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%S"),
                     (local + dt.timedelta(hours=5, minutes=13)).strftime("%Y-%m-%dT%H:%M"),
                     zone, now=0)
    assert rng.start == T0 + 420 and rng.end == T0 + 5 * 3600 + 780
    expected = brute_force(conn, rng.start, rng.end)
    summary = summarise(conn, rng, premium=False)
    assert summary.figure("message", "Messages Delivered") == expected["delivered"]
    assert summary.figure("message", "Messages Rejected") == expected["rejected"]
    hourly = disposition_counts(conn, rng)
    assert sum(h.get("delivered", 0) for h in hourly.values()) == expected["delivered"]
    assert count_detail(conn, DetailFilter(rng)) == sum(expected.values())


def test_a_range_in_a_non_utc_zone_selects_that_local_day(database, seed):
    zone = "America/New_York"                        # UTC-5 in January
    seed.at(parse_time("2027-01-15T00:00:00-05:00", UTC), Action.ACCEPTED, subject="first")
    seed.at(parse_time("2027-01-15T23:59:59-05:00", UTC), Action.ACCEPTED, subject="last")
    seed.at(parse_time("2027-01-15T02:00:00Z", UTC), Action.ACCEPTED, subject="day before")
    seed.at(parse_time("2027-01-16T04:00:00Z", UTC), Action.ACCEPTED, subject="still the 15th")
    seed.at(parse_time("2027-01-16T05:00:00Z", UTC), Action.ACCEPTED, subject="the 16th")
    seed.done()
    rng = make_range("2027-01-15", "2027-01-15", zone, now=0)   # bare --to: end of that day
    rows = list(iter_detail(database[1], DetailFilter(rng)))
    assert [r.subject for r in rows] == ["first", "still the 15th", "last"]
    assert detail_record(rows[0], rng.zone)["time"] == "2027-01-15T00:00:00-05:00"
    assert summarise(database[1], rng, premium=False).figure(
        "message", "Messages Accepted") == 3


def test_every_action_filter_selects_exactly_its_events(database, seed):
    for i, action in enumerate(Action):
        seed.at(T0 + i, action, info=f"event {action}")
    seed.done()
    conn = database[1]
    rng = ReportRange(T0, T0 + 3600)
    for action in Action:
        rows = list(iter_detail(conn, DetailFilter(rng, frozenset({action}))))
        assert [r.action for r in rows] == [action.value]
    for category, _title, actions in ACTION_GROUPS:
        rows = list(iter_detail(conn, DetailFilter(rng, frozenset(actions))))
        assert {r.action for r in rows} == {a.value for a in Action if CATEGORY_OF[a] is category}
    assert len(list(iter_detail(conn, DetailFilter(rng)))) == len(Action)


def test_action_groups_follow_the_guide_tables():
    titles = [title for _c, title, _a in ACTION_GROUPS]
    assert titles == ["System", "SMTP", "Premium AntiSpam", "Message", "Blocking"]
    groups = {c: [a.value for a in actions] for c, _t, actions in ACTION_GROUPS}
    assert groups[Category.SMTP] == ["connection_from", "connected_to", "disconnected",
                                     "connection_closed", "protocol_violation", "rejected"]
    assert groups[Category.BLOCKING][:4] == ["malformed", "virus_logged", "file_repaired",
                                             "file_deleted"]


@pytest.mark.parametrize("field, value", [
    ("result", "Succeeded-XYZ"), ("queue_id", "Q-XYZ-1"), ("connection_id", "c-xyz"),
    ("client_ip", "2001:db8::xyz"), ("sender", "XyZ@example.com"),
    ("recipients", ["a@example.com", "xyz@example.org"]), ("subject", "Re: the XYZ plan"),
    ("rule", "rules.xyz"), ("info", "virus W32.Xyz"), ("data", {"user": "mr xyz"}),
])
def test_search_finds_a_term_in_every_text_field_ignoring_case(database, seed, field, value):
    seed.at(T0 + 1, Action.SCAN_ERROR, **{field: value})
    seed.at(T0 + 2, Action.SCAN_ERROR, subject="nothing to see")
    seed.done()
    rng = ReportRange(T0, T0 + 60)
    for term in ("xyz", "XYZ", "xYz"):
        rows = list(iter_detail(database[1], DetailFilter(rng, search=term)))
        assert len(rows) == 1, term


def object_modified(seed, when, changes, page="content", user="admin", **extra):
    """What console.settings_service.record_change writes (secrets already "***")."""
    return seed.at(when, Action.OBJECT_MODIFIED, result="saved", client_ip="192.0.2.9",
                   info="Filtering Policy › Content", rule=",".join(sorted(changes)) or None,
                   data={"user": user, "page": page, "changes": changes, **extra})


def test_search_finds_the_data_as_shown_not_as_json_escapes_it(database, seed):
    """`data` is stored with json.dumps' escapes (\\", \\u00fc, \\\\): a term typed as the
    report shows the user or the details must still find the event."""
    object_modified(seed, T0 + 1, {"subject.lines": [[], ['"><script>x</script>']]})
    object_modified(seed, T0 + 2, {"smtp.banner": ["", "Grüße aus Köln"]}, user="jörg")
    object_modified(seed, T0 + 3, {"logging.dir": ["", "C:\\temp"]})
    seed.at(T0 + 4, Action.SCAN_ERROR, info="nothing to see", data={"problem": "plain"})
    seed.done()
    conn = database[1]

    def found(term):
        rows = iter_detail(conn, DetailFilter(ReportRange(T0, T0 + 60), search=term))
        return [r.time - T0 for r in rows]

    assert found('"><script>') == [1]
    assert found("grüße AUS") == [2] and found("GRÜSSE") == [2]   # casefold: ß is ss
    assert found("JÖRG") == [2]
    assert found("c:\\TEMP") == [3]
    assert found("plain") == [4] and found("smtp.banner") == [2]
    assert found("u00fc") == []                                # no hits inside escapes


def test_search_folds_unicode_and_takes_like_wildcards_literally(database, seed):
    seed.at(T0 + 1, Action.SUBJECT_BLOCKED, subject="Über-Angebot für Sie")
    seed.at(T0 + 2, Action.SUBJECT_BLOCKED, subject="100% free")
    seed.at(T0 + 3, Action.SUBJECT_BLOCKED, subject="1000 free")
    seed.at(T0 + 4, Action.SUBJECT_BLOCKED, subject="snake_case")
    seed.at(T0 + 5, Action.SUBJECT_BLOCKED, subject="snakeXcase")
    seed.done()
    rng, conn = ReportRange(T0, T0 + 60), database[1]

    def found(term):
        return [r.subject for r in iter_detail(conn, DetailFilter(rng, search=term))]

    assert found("über-ANGEBOT") == ["Über-Angebot für Sie"]
    assert found("0% f") == ["100% free"]
    assert found("e_c") == ["snake_case"]
    assert found("accepted") == []
    assert found("subject_blocked") == found("SUBJECT_BLOCKED") and len(found("blocked")) == 5


def test_search_and_actions_combine(database, seed):
    seed.at(T0 + 1, Action.DROPPED, subject="invoice")
    seed.at(T0 + 2, Action.DELIVERED, subject="invoice")
    seed.at(T0 + 3, Action.DROPPED, subject="hello")
    seed.done()
    flt = DetailFilter(ReportRange(T0, T0 + 60), frozenset({Action.DROPPED}), "INVOICE")
    assert [(r.action, r.subject) for r in iter_detail(database[1], flt)] == [
        ("dropped", "invoice")]
    assert count_detail(database[1], flt) is None   # a search is counted by scanning


def test_detail_pages_forward_and_back(database, seed):
    for i in range(250):
        seed.at(T0 + i // 3, Action.DELIVERED, queue_id=f"q{i:03d}")  # equal times too
    seed.done()
    conn, flt = database[1], DetailFilter(ReportRange(T0, T0 + 3600))
    first = detail_page(conn, flt, size=100)
    assert first.total == 250 and first.has_next and not first.has_previous
    second = detail_page(conn, flt, size=100, after=first.next_key)
    third = detail_page(conn, flt, size=100, after=second.next_key)
    assert [len(p.rows) for p in (first, second, third)] == [100, 100, 50]
    assert not third.has_next and third.has_previous
    ids = [r.queue_id for p in (first, second, third) for r in p.rows]
    assert ids == [f"q{i:03d}" for i in range(250)]
    back = detail_page(conn, flt, size=100, before=third.previous_key)
    assert [r.queue_id for r in back.rows] == [r.queue_id for r in second.rows]
    back = detail_page(conn, flt, size=100, before=back.previous_key)
    assert [r.queue_id for r in back.rows] == [r.queue_id for r in first.rows]
    assert not back.has_previous


def test_detail_streams_in_batches_without_losing_or_repeating_rows(database, seed):
    for i in range(1234):
        seed.at(T0 + (i % 400), Action.ACCEPTED, queue_id=str(i))
    seed.done()
    rows = list(iter_detail(database[1], DetailFilter(ReportRange(T0, T0 + 3600)), batch=100))
    assert sorted(int(r.queue_id) for r in rows) == list(range(1234))
    assert [r.time for r in rows] == sorted(r.time for r in rows)


@pytest.mark.parametrize("actions", [frozenset(), frozenset({Action.REJECTED}),
                                     frozenset({Action.DELIVERED, Action.ACCEPTED})])
def test_detail_queries_use_an_index(database, seed, actions):
    from shared.report import _action_counts, _detail_sql, _plan
    for i in range(50):
        seed.at(T0 + i, Action.DELIVERED)
    seed.done()
    conn = database[1]
    flt = DetailFilter(ReportRange(T0, T0 + 3600), actions)
    plan = _plan(_action_counts(conn, flt.range), flt, 100)
    sql, params = _detail_sql(conn, flt, plan=plan, after=(T0, 1), before=None, limit=101)
    plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "USING INDEX events_time" in plan or "USING INDEX events_action_time" in plan, plan


def test_csv_header_columns_and_formula_escaping(database, seed):
    seed.at(T0 + 1, Action.SUBJECT_BLOCKED, sender="@evil.example", subject="=HYPERLINK(1)",
            recipients=["+1@example.com", "b@example.com"], info="-2+3", rule="subject.lines",
            size=12, queue_id="Q1", client_ip="192.0.2.1", connection_id="c1",
            result="dropped, with \"quotes\"\nand a newline",
            data={"user": "=cmd|' /C calc'!A0", "pattern": "-1"})
    seed.done()
    rng = ReportRange(T0, T0 + 60, "Europe/Berlin")
    text = "".join(csv_lines(DETAIL_COLUMNS, (detail_record(r, rng.zone) for r in
                                             iter_detail(database[1], DetailFilter(rng)))))
    assert text.startswith("time,category,action,result,queue_id,connection_id,client_ip,"
                           "sender,recipients,subject,size,rule,info\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows == [{
        "time": "2027-01-15T09:00:01+01:00", "category": "blocking", "action": "subject_blocked",
        "result": "dropped, with \"quotes\"\nand a newline", "queue_id": "Q1",
        "connection_id": "c1", "client_ip": "192.0.2.1", "sender": "'@evil.example",
        "recipients": "'+1@example.com;b@example.com", "subject": "'=HYPERLINK(1)",
        "size": "12", "rule": "subject.lines",
        "info": "'-2+3; user==cmd|' /C calc'!A0; pattern=-1"}]


@pytest.mark.parametrize("value, cell", [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"),
                                         ("@SUM(A1)", "'@SUM(A1)"), ("a=b", "a=b"),
                                         (None, ""), (12, "12"), ("", ""),
                                         # a right-to-left override shown, not obeyed
                                         ("invoice\u202efdp.scr", "invoice⟨U+202E⟩fdp.scr")])
def test_escape_cell(value, cell):
    assert escape_cell(value) == cell


def test_summary_csv_and_json(database, seed):
    seed_traffic(seed)
    summary = summarise(database[1], whole_day(), premium=True)
    text = "".join(csv_lines(SUMMARY_COLUMNS, summary_records(summary)))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["section", "item", "count"]
    assert rows[1] == ["message", "Messages Accepted", "23"]
    assert ["premium", "Total", "27"] in rows and ["infection", "Total", "24"] in rows
    assert ["viruses", "EICAR-Test-File", "13"] in rows
    assert ["subjects_blocked", "'*hot stock*", "3"] not in rows     # * is not a formula
    assert ["subjects_blocked", "*hot stock*", "3"] in rows
    assert ["attachments_deleted", "invoice.exe", "4"] in rows
    assert {r[0] for r in rows[1:]} == {"message", "premium", "infection", "viruses",
                                        "subjects_blocked", "attachments_deleted"}
    lines = [json.loads(line) for line in json_lines(summary_records(summary))]
    assert lines[0] == {"section": "message", "item": "Messages Accepted", "count": 23}
    report = "".join(summary_text(summary))
    assert "Message Summary" in report and "Viruses Found" in report


def test_csv_and_text_show_a_disguised_file_name_as_it_is(database, seed):
    # policy finding C2: "photo\u202egpj.exe" read as "photoexe.jpg" in reports
    seed.at(T0 + 1, Action.ATTACHMENT_DELETED, data={"file": "photo\u202egpj.exe"},
            info="photo\u202egpj.exe\r\nforged line")
    seed.done()
    summary = summarise(database[1], whole_day(), premium=False)
    rows = list(csv.reader(io.StringIO("".join(csv_lines(SUMMARY_COLUMNS,
                                                          summary_records(summary))))))
    assert ["attachments_deleted", "photo⟨U+202E⟩gpj.exe", "1"] in rows
    assert "photo⟨U+202E⟩gpj.exe" in "".join(summary_text(summary))
    assert "\u202e" not in "".join(summary_text(summary))


def test_detail_json_lines_use_the_csv_column_names(database, seed):
    seed.at(T0 + 1, Action.DELIVERED, recipients=["a@x.example", "b@x.example"], size=10)
    seed.at(T0 + 2, Action.FILE_DELETED, data={"virus": "EICAR", "file": "x.com"})
    seed.done()
    rng = ReportRange(T0, T0 + 60)
    lines = [json.loads(line) for line in json_lines(
        detail_record(r, rng.zone) for r in iter_detail(database[1], DetailFilter(rng)))]
    assert list(lines[0]) == list(DETAIL_COLUMNS)
    assert lines[0]["recipients"] == "a@x.example;b@x.example" and lines[0]["size"] == 10
    assert lines[1]["info"] == "file=x.com; virus=EICAR"   # no info: the data, readable


SPEC_DETAIL_COLUMNS = ("time", "category", "action", "result", "queue_id", "connection_id",
                       "client_ip", "sender", "recipients", "subject", "size", "rule", "info")


def test_detail_columns_are_the_spec_columns_in_its_order():
    """SPEC §2: "Detail CSV columns, in this order, with this header row"; the user and the
    details go into `info`, "the rest (virus name, file name, score, user, reason)"."""
    assert DETAIL_COLUMNS == SPEC_DETAIL_COLUMNS


def records(conn, rng=None, **flt):
    rng = rng or ReportRange(T0, T0 + 3600)
    return [detail_record(r, rng.zone) for r in iter_detail(conn, DetailFilter(rng, **flt))]


def test_an_object_modified_row_says_who_changed_what(database, seed):
    """Guide Table 7-5 "Object modified": what was modified, which user, from which client;
    SPEC §7 "who, from where, which page, what changed"."""
    object_modified(seed, T0 + 1, {"subject.lines": [["old*"], ["old*", "für \"><b>"]],
                                   "admin.password": ["***", "***"],
                                   "smtp.banner": ["", "Hello"], "tls.request": [None, "CN=x"]})
    seed.done()
    (row,) = records(database[1])
    assert row["client_ip"] == "192.0.2.9"
    assert row["rule"] == "admin.password,smtp.banner,subject.lines,tls.request"
    assert row["info"] == ('Filtering Policy › Content; user=admin; '     # page, who, what
                           'admin.password: "***" → "***"; smtp.banner: "" → "Hello"; '
                           'subject.lines: ["old*"] → ["old*", "für \\"><b>"]; '
                           'tls.request: null → "CN=x"')
    as_json = json.loads(next(json_lines([row])))
    assert as_json["info"] == row["info"] and list(as_json) == list(DETAIL_COLUMNS)
    text = "".join(text_lines(DETAIL_COLUMNS, [row]))
    assert text.splitlines()[0].split()[-1] == "info"
    assert "user=admin" in text.splitlines()[2] and 'smtp.banner: "" → "Hello"' in text


def test_a_command_row_names_the_command_and_its_arguments(database, seed):
    """Auto-generated whitelist moves and deletes are commands for the core: no changed keys
    (empty rule), so the details must say which domains."""
    object_modified(seed, T0 + 1, {}, page="auto_whitelist", command="whitelist.auto.delete",
                    args={"domains": ["alpha.net", "zeta.org"]}, command_id=7)
    seed.done()
    (row,) = records(database[1])
    assert row["rule"] is None
    assert row["info"] == ('Filtering Policy › Content; user=admin; '
                           'command=whitelist.auto.delete; '
                           'args.domains=["alpha.net", "zeta.org"]; command_id=7')


def test_system_rows_show_their_user_and_data(database, seed):
    """What console.auth.service writes for logon, logoff, failed logons and refused pages."""
    seed.at(T0 + 1, Action.LOGON, result="succeeded", client_ip="192.0.2.1", info="admin",
            data={"user": "admin"})
    seed.at(T0 + 2, Action.FAILED_LOGON, result="failed", client_ip="192.0.2.2", info="root",
            data={"account": "root", "count": 3})
    seed.at(T0 + 3, Action.LOGOFF, result="succeeded", client_ip="192.0.2.1", info="report",
            data={"user": "report", "reason": "timeout"})
    seed.at(T0 + 4, Action.UNAUTHORIZED_ACCESS, result="denied", info="/configuration/",
            data={"user": "report", "path": "/configuration/"})
    seed.at(T0 + 5, Action.FILE_DELETED, data={"virus": "EICAR", "file": "x.com"})
    seed.done()
    rows = records(database[1])
    assert [(r["action"], r["info"]) for r in rows] == [
        ("logon", "admin"), ("failed_logon", "root; count=3"),    # info is the user already
        ("logoff", "report; reason=timeout"),
        ("unauthorized_access", "/configuration/; user=report"),    # and the path
        ("file_deleted", "file=x.com; virus=EICAR")]


def test_page_details_are_shortened_and_long_lists_shown_as_what_changed():
    old = [f"@d{i:03d}.example" for i in range(300)]
    new = old[1:] + ["@new.example"]
    values = {"user": "admin", "page": "whitelist", "changes": {
        "whitelist.custom": [old, new], "smtp.banner": ["a", "b" * 500]}}
    full = detail_parts("object_modified", values)
    # a file shows a long list's change as what changed, in full (tester25a B1), a short
    # list's as both lists
    assert full[1] == ('whitelist.custom: added ["@new.example"], removed ["@d000.example"] '
                       '(300 → 300 entries)')
    assert full[0] == f'smtp.banner: "a" → "{"b" * 500}"'
    short_list = {"changes": {"whitelist.custom": [old[:3], old[1:3]]}}
    assert detail_parts("object_modified", short_list) == [
        f"whitelist.custom: {json.dumps(old[:3])} → {json.dumps(old[1:3])}"]
    many = [f"@added{i:04d}.example" for i in range(100)]
    longer = detail_parts("object_modified", {"changes": {"whitelist.custom": [old, old + many]}})
    assert longer == [f"whitelist.custom: added {json.dumps(many)}, removed [] (300 → 400 entries)"]
    # an ordered list (rules) only reordered: said so, not "added [], removed []"
    moved = detail_parts("object_modified", {"changes": {"rules.spam": [old, old[::-1]]}})
    assert moved == ["rules.spam: the same 300 entries in another order"]
    # a repeat an older release stored, dropped: a removal (review25b R2)
    deduped = detail_parts("object_modified", {"changes": {"whitelist.custom": [
        old + old[:1], old]}})
    assert deduped == ['whitelist.custom: added [], removed ["@d000.example"] '
                       '(301 → 300 entries)']
    short = detail_parts("object_modified", values, limit=120)
    assert short[0].startswith('smtp.banner: "a" → "bbb') and short[0].endswith("…")
    assert len(short[0]) == 120
    assert short[1] == ('whitelist.custom: added ["@new.example"], removed ["@d000.example"] '
                        '(300 → 300 entries)')


def test_text_table_is_aligned():
    records = [{"a": "x", "size": 5}, {"a": "longer", "size": 12345}]
    lines = list(text_lines(("a", "size"), records))
    assert lines[0] == "a        size\n"
    assert lines[1] == "------  -----\n"
    assert lines[2] == "x           5\n" and lines[3] == "longer  12345\n"


# --- times ---------------------------------------------------------------------------------

def test_parse_time_forms():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    assert parse_time("2027-01-15", berlin) == parse_time("2027-01-15T00:00+01:00", UTC)
    assert parse_time("2027-01-15", berlin, end=True) == parse_time("2027-01-16T00:00+01:00",
                                                                    UTC)
    assert parse_time("2027-01-15T13:00", berlin) == parse_time("2027-01-15T12:00Z", UTC)
    assert parse_time("2027-07-15 13:00", berlin) == parse_time("2027-07-15T11:00:00Z", UTC)
    assert parse_time("2027-01-15T13:00-05:00", berlin) == parse_time("2027-01-15T18:00Z", UTC)
    for bad in ("", "yesterday", "2027-13-01", "2027-01-15T25:00"):
        with pytest.raises(BadTime):
            parse_time(bad, berlin)


def test_make_range_defaults_and_errors():
    rng = make_range(None, None, "UTC", now=T0)
    assert (rng.start, rng.end) == (T0 - 86400, T0)
    with pytest.raises(BadTime) as caught:
        make_range("2027-01-02", "2027-01-01", "UTC", now=T0)
    assert caught.value.option == "range"
    with pytest.raises(BadTime) as caught:
        make_range("nope", None, "UTC", now=T0)
    assert caught.value.option == "from"


def test_iso_local_and_file_name():
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    assert iso_local(T0 + 0.9, tokyo) == "2027-01-15T17:00:00+09:00"
    assert csv_file_name(T0 + 65, tokyo) == "MAILMOAT202701151701.csv"


# --- guide findings 3 and 4: mass mailers in the infection figures; copies not kept -------
# A mass-mailer cleanup (the worm's message dropped) was in neither Viruses Found nor the
# Infection Summary, though the outbreak alert counts it. A virus quarantine copy that was
# not kept (low disk) counted as a message quarantined, which the Status page does not count.

ONE_HOUR = ReportRange(T0, T0 + 3600, "UTC")


def test_a_mass_mailer_cleanup_counts_as_an_infection_deleted_and_names_its_virus(
        database, seed):
    seed.at(T0 + 1, Action.MASS_MAILER_CLEANUP, rule="av.mass_mailer_cleanup",
            result="dropped", data={"virus": "W32.Testmass@mm", "file": "a.exe"})
    seed.at(T0 + 2, Action.MASS_MAILER_CLEANUP, rule="av.mass_mailer_cleanup",
            result="dropped", data={"virus": "W32.Testmass2@m", "file": "b.exe"})
    seed.at(T0 + 3, Action.MASS_MAILER_CLEANUP, rule="av.mass_mailer_cleanup",
            result="dropped", data={"virus": "W32.Testmass@mm", "file": "c.exe"})
    seed.at(T0 + 4, Action.FILE_DELETED, data={"virus": "EICAR", "file": "x.com"})
    seed.done()
    summary = summarise(database[1], ONE_HOUR, premium=False)
    assert summary.section("infection").rows == [
        ("Infections Logged", 0), ("Infections Repaired", 0), ("Infections Deleted", 4)]
    assert summary.section("infection").total == 4
    assert summary.section("viruses").rows == [
        ("W32.Testmass@mm", 2), ("EICAR", 1), ("W32.Testmass2@m", 1)]
    assert summary.section("viruses").total == summary.section("infection").total


def test_a_mass_mailer_cleanup_in_a_whole_hour_counts_from_the_rollups(database, seed):
    # the hour inside the range is read from event_hourly, keyed by the virus name
    seed.at(T0 + 1800, Action.MASS_MAILER_CLEANUP, data={"virus": "W32.Testmass@mm"})
    seed.done()
    summary = summarise(database[1], ReportRange(T0 - 60, T0 + 7200 + 60, "UTC"),
                        premium=False)
    assert summary.figure("infection", "Infections Deleted") == 1
    assert summary.section("viruses").rows == [("W32.Testmass@mm", 1)]


def test_a_virus_quarantine_copy_not_kept_is_no_message_quarantined(database, seed):
    for i in range(2):
        seed.at(T0 + 10 + i, Action.QUARANTINED, rule="av.quarantine", result="quarantined",
                data={"folder": "virus"})
    seed.at(T0 + 20, Action.QUARANTINED, rule="av.quarantine", result=COPY_NOT_KEPT,
            data={"folder": "virus"})
    seed.at(T0 + 30, Action.QUARANTINED, rule="rules.content_action",
            data={"folder": "spam"})              # the queue manager's disposition event
    seed.done()
    conn = database[1]
    assert summarise(conn, ONE_HOUR, premium=False).figure(
        "message", "Messages Quarantined") == 3
    buckets = disposition_counts(conn, ONE_HOUR)
    assert sum(b.get("quarantined", 0) for b in buckets.values()) == 3


# --- connected_to rows of older releases; facts the writer's text states -----------------------

def test_connected_to_rows_an_older_release_wrote_read_in_todays_words(database, seed):
    """A range across an upgrade: connected_to rows written before 4705b58 have the result
    "plain" or "tls" and no `connection` (a connection they opened). Every output and the
    search read them as succeeded actual connections; the stored rows stay as written."""
    old = {"host": "mx.example", "address": "192.0.2.7", "port": 25, "next_hop": "mx:x"}
    seed.at(T0 + 1, Action.CONNECTED_TO, queue_id="q1", result="plain",
            info="mx.example[192.0.2.7]:25", data={**old, "tls": False})
    seed.at(T0 + 2, Action.CONNECTED_TO, queue_id="q2", result="tls",
            info="mx.example[192.0.2.7]:25", data={**old, "tls": True})
    seed.at(T0 + 3, Action.CONNECTED_TO, queue_id="q3", result="succeeded",
            info="cached connection to mx.example[192.0.2.7]:25, no TLS",
            data={**old, "tls": False, "connection": "cached"})
    seed.at(T0 + 4, Action.CONNECTED_TO, queue_id="q4", result="failed",
            info="connect to mx.example[192.0.2.7]:25: Connection refused",
            data={**old, "tls": False, "connection": "actual"})
    seed.at(T0 + 5, Action.SCAN_ERROR, queue_id="q5", result="plain")    # not a connection
    seed.done()
    conn = database[1]
    rows = records(conn)
    assert [(r["queue_id"], r["result"]) for r in rows] == [
        ("q1", "succeeded"), ("q2", "succeeded"), ("q3", "succeeded"), ("q4", "failed"),
        ("q5", "plain")]
    assert rows[0]["info"] == ("mx.example[192.0.2.7]:25; address=192.0.2.7; "
                               "connection=actual; host=mx.example; next_hop=mx:x; port=25; "
                               "tls=false")
    assert "connection=actual" in rows[1]["info"] and "tls=true" in rows[1]["info"]
    assert "connection=cached" in rows[2]["info"]
    assert [json.loads(line)["result"] for line in json_lines(rows[:2])] == ["succeeded"] * 2

    def found(term):
        return [r.queue_id for r in iter_detail(conn, DetailFilter(ONE_HOUR, search=term))]

    assert found("succeeded") == ["q1", "q2", "q3"] and found("SUCCEEDED") == found("succeeded")
    assert found("plain") == ["q5"]
    assert found("actual") == ["q1", "q2", "q4"]
    stored = conn.execute("SELECT queue_id, result, data FROM events ORDER BY id").fetchall()
    assert [(q, r) for q, r, _ in stored[:2]] == [("q1", "plain"), ("q2", "tls")]
    assert all("connection" not in json.loads(d) for _, _, d in stored[:2])


def test_a_legacy_row_is_found_by_a_unicode_search_too(database, seed):
    """A term that is not ASCII takes the casefolding path (mailmoat_contains), which reads
    the same mapped columns."""
    seed.at(T0 + 1, Action.CONNECTED_TO, queue_id="q1", result="tls", info="mx.example",
            subject="Grüße", data={"host": "mx.example", "tls": True})
    seed.done()
    flt = DetailFilter(ONE_HOUR, search="GRÜSSE")
    [row] = iter_detail(database[1], flt)
    assert row.result == "succeeded" and json.loads(row.data)["connection"] == "actual"


HEURISTIC_REASON = ("Message is considered to be spam (score 97, spam definitions 2026-11-28 "
                    "rev 5; gtube, no_date_header)")


def test_a_fact_the_writers_text_states_is_not_repeated(database, seed):
    """The spam score and definitions are in the reason text of a heuristic spam event, and
    of a malformed one that is also spam (core/pipeline/service.py), and in their data:
    the row says each once. A fact the text does not state (a spam rule's score) stays."""
    seed.at(T0 + 1, Action.HEURISTIC_SPAM, queue_id="h", info=HEURISTIC_REASON,
            data={"definitions": "2026-11-28 rev 5", "rules": ["gtube", "no_date_header"],
                  "forced_by": None, "action": "log", "score": 97})
    seed.at(T0 + 2, Action.MALFORMED, queue_id="m",
            info="MIME defects: message: missing closing boundary; " + HEURISTIC_REASON,
            data={"defects": 1, "action": "log", "score": 97, "spam_rule":
                  "heuristic.sensitivity", "definitions": "2026-11-28 rev 5"})
    seed.at(T0 + 3, Action.MALFORMED, queue_id="r",
            info="MIME defects: message: missing closing boundary; spam rule lottery "
                 "matched: 'jackpot'",
            data={"defects": 1, "action": "log", "score": 100, "spam_rule": "lottery"})
    seed.done()
    heuristic, malformed, by_rule = records(database[1])
    assert heuristic["info"] == (HEURISTIC_REASON + '; action=log; rules=["gtube", '
                                 '"no_date_header"]')
    assert malformed["info"].endswith(HEURISTIC_REASON + "; action=log; defects=1; "
                                      "spam_rule=heuristic.sensitivity")
    assert by_rule["info"].endswith("'jackpot'; action=log; defects=1; score=100; "
                                    "spam_rule=lottery")
    for row in (heuristic, malformed):
        assert row["info"].count("score") == 1 and row["info"].count("2026-11-28") == 1
    # the page's Details: the same facts, its Info column being the writer's text
    values = {"defects": 1, "score": 97, "definitions": "2026-11-28 rev 5"}
    assert detail_parts("malformed", values, limit=200, info=HEURISTIC_REASON) == ["defects=1"]
    assert detail_parts("malformed", values, limit=200) == [
        "defects=1", "definitions=2026-11-28 rev 5", "score=97"]


@pytest.mark.parametrize("info, kept", [
    ("score 100", []), ("(score 100, x)", []), ("score=100; x", []),
    ("score 1000", ["score=100"]), ("score 100.5", ["score=100"]),
    ("spam_score 100", ["score=100"]), ("prescore 100", ["score=100"]),
    ("the score is 100", ["score=100"]), ("", ["score=100"]),
])
def test_only_a_fact_stated_in_whole_words_is_left_out(info, kept):
    assert detail_parts("heuristic_spam", {"score": 100}, info=info) == kept


def test_a_fact_that_is_the_writers_whole_text_is_not_repeated(database, seed):
    """A reordering's info is its next hop, which its data has too (outbound19 B1: the
    row read "relay:…; messages=4; next_hop=relay:…"). A value merely in the text stays."""
    hop = "relay:192.0.2.7:25"
    seed.at(T0 + 1, Action.REORDERING_STARTED, info=hop, data={"next_hop": hop, "messages": 4})
    seed.at(T0 + 2, Action.REORDERING_STOPPED, info=hop,
            data={"next_hop": hop, "messages": 4, "seconds": 0.5})
    seed.done()
    started, stopped = records(database[1])
    assert started["info"] == f"{hop}; messages=4"
    assert stopped["info"] == f"{hop}; messages=4; seconds=0.5"
    assert detail_parts("reordering_started", {"next_hop": hop}, info=f"to {hop}") == [
        f"next_hop={hop}"]


# --- text an older release wrote that no UTF-8 output can carry ---------------------------------

# An older release's object_modified event for a setting it accepted with a lone surrogate
# (today's schema refuses one): json.dumps kept it as the ASCII escape "\ud800".
SURROGATE_CHANGE = {"user": "root", "page": "cli",
                    "changes": {"disclaimer.text": ["", "Scanned \ud800 by gw"]}}


def test_a_lone_surrogate_in_an_older_events_data_reads_as_u_fffd_in_every_format(database,
                                                                                  seed):
    """Upgrade16 finding 2: `report detail` (text and CSV) ended in a UnicodeEncodeError
    traceback, the console's detail report gave 500 and its CSV download broke off, for as
    long as that event stayed in the range."""
    seed.at(T0 + 1, Action.OBJECT_MODIFIED, result="saved", rule="disclaimer.text",
            info="mailmoat config set", data=SURROGATE_CHANGE)
    seed.at(T0 + 2, Action.ACCEPTED, queue_id="after", subject="Grüße")
    seed.done()
    conn = database[1]
    [stored] = conn.execute("SELECT data FROM events WHERE action = 'object_modified'")
    assert "Scanned \\ud800 by gw" in stored[0]         # as the older release stored it
    rows = records(conn)
    assert rows[0]["info"] == ('mailmoat config set; user=root; disclaimer.text: "" → '
                               '"Scanned \ufffd by gw"')
    for lines in (csv_lines(DETAIL_COLUMNS, rows), json_lines(rows),
                  text_lines(DETAIL_COLUMNS, rows)):
        text = "".join(lines)
        text.encode("utf-8")
        assert "Scanned \ufffd by gw" in text and "after" in text

    def found(term):
        return [r.action for r in iter_detail(conn, DetailFilter(ONE_HOUR, search=term))]

    # A term that is not ASCII is matched in Python (mailmoat_contains), which SQLite handed
    # the surrogate as bytes no UTF-8 text holds: the search failed for the whole range.
    assert found("grüsse") == ["accepted"]
    assert found("SCANNED \ufffd BY") == found("scanned") == ["object_modified"]
