"""Right-to-left text from mail keeps its punctuation in place in the console (tester i18n19
C2): the cells showing a subject take their direction from their text (`dir="auto"`), and
each value an event's info or a report detail quotes is isolated (`<bdi>`), so the quotes
and asterisk of "subject line '*מבצע*'" and the comma between two Hebrew terms are not laid
out with the Hebrew run. Addresses and file names stay left to right, each one holding a
right-to-left letter a left-to-right isolate (`<bdi dir="ltr">`): given the direction of
their first letter, `מסמך.exe` showed `.exe` at its left end and `אבי@bank.example` its
domain first (review19 r4 R1). Events are seeded through the event writer; bidi controls
still show as marks (console/security.py)."""

from __future__ import annotations

import re

from shared.clock import FakeClock
from shared.events import Action, EventWriter
from tests.console.test_antivirus import _quarantine
from tests.console.test_configuration import _hold

QUERY = "start=2027-01-14T08:00&end=2027-01-15T08:00&generated=1"
SUBJECT = "מבצע חדש!"


def _seed(home, clock):
    writer = EventWriter(home.db, "core", FakeClock(clock.now() - 600))
    writer.record(Action.SUBJECT_BLOCKED, queue_id="Q1", rule="subject.lines",
                  sender="דני@דוגמה.test", recipients=["b@example.net"], subject=SUBJECT,
                  info=f"subject {SUBJECT!r} matches blocked subject line '*מבצע*'",
                  data={"pattern": "*מבצע*", "subject": SUBJECT})
    writer.record(Action.CONTENT_RULE_VIOLATION, queue_id="Q1", rule="rules.content[3]",
                  subject=SUBJECT, info="content rule rules.content[3] matched: "
                                        "'סודי ביותר', 'מבצע'",
                  data={"terms": ["סודי ביותר", "מבצע"], "rule_index": 3})
    writer.record(Action.ATTACHMENT_DELETED, queue_id="Q1", subject=SUBJECT,
                  data={"file": "\u202eקובץ.exe", "pattern": "*.exe"})
    writer.record(Action.ATTACHMENT_DELETED, queue_id="Q2", subject="Offer",
                  sender="אבי@bank.example", recipients=["ש@x.test", "bob@y.test"],
                  data={"file": "מסמך.exe", "pattern": "*.exe"})
    writer.close()


def test_detail_report_isolates_mail_text(admin, clock):
    _seed(admin.home, clock)
    page = admin.get(f"/reporting/detail?{QUERY}").get_data(as_text=True)
    # a subject cell takes its direction from its text
    assert f'<td dir="auto">{SUBJECT}</td>' in page
    # addresses stay left to right, each one with a right-to-left letter isolated
    assert '<td><bdi dir="ltr">דני@דוגמה.test</bdi></td>' in page
    assert '<td>b@example.net</td>' in page
    assert '<td><bdi dir="ltr">אבי@bank.example</bdi></td>' in page
    assert '<td><bdi dir="ltr">ש@x.test</bdi>; bob@y.test</td>' in page
    assert 'dir="auto">אבי' not in page and 'dir="auto">ש@' not in page
    # a file name fact too: its ".exe" stays at the right end
    assert '<li>file=<bdi dir="ltr">מסמך.exe</bdi></li>' in page
    # info: every quoted value isolated, the quotes outside
    assert ("subject &#39;<bdi>מבצע חדש!</bdi>&#39; matches blocked subject line "
            "&#39;<bdi>*מבצע*</bdi>&#39;") in page
    assert "matched: &#39;<bdi>סודי ביותר</bdi>&#39;, &#39;<bdi>מבצע</bdi>&#39;" in page
    # details: a fact's value, or each quoted value of it
    assert "<li>pattern=<bdi>*מבצע*</bdi></li>" in page
    assert "<li>terms=[&#34;<bdi>סודי ביותר</bdi>&#34;, &#34;<bdi>מבצע</bdi>&#34;]</li>" in page
    # an override is still shown as a mark inside the isolate
    assert '<bdi dir="ltr">\u27e8U+202E\u27e9קובץ.exe</bdi>' in page and "\u202e" not in page


def test_summary_names_take_their_direction_from_their_text(admin, clock):
    _seed(admin.home, clock)
    page = admin.get(f"/reporting/summary?{QUERY}").get_data(as_text=True)
    # a subject-line pattern by its text; a file name left to right
    assert re.search(r'<th scope="row" dir="auto">\*מבצע\*</th>', page)
    assert '<th scope="row"><bdi dir="ltr">מסמך.exe</bdi></th>' in page
    assert 'dir="auto">מסמך' not in page


def test_hold_queue_sender_and_reason(admin, home):
    _hold(home, "q1aaaa", sender="דני@דוגמה.test",
          reason="subject 'מבצע חדש!' could not be processed")
    _hold(home, "q2bbbb", sender="אבי@bank.example")
    page = admin.get("/configuration/hold").get_data(as_text=True)
    assert '<td><bdi dir="ltr">דני@דוגמה.test</bdi></td>' in page
    assert '<td><bdi dir="ltr">אבי@bank.example</bdi></td>' in page
    assert "subject &#39;<bdi>מבצע חדש!</bdi>&#39; could not be processed" in page


def test_virus_quarantine_file_names_read_left_to_right(admin, home):
    _quarantine(home, files=["מסמך.exe", "readme.txt"], subject="מבצע!")
    page = admin.get("/antivirus/quarantine").get_data(as_text=True)
    assert '<td><bdi dir="ltr">מסמך.exe</bdi>, readme.txt</td>' in page
    assert '<td dir="auto">מבצע!</td>' in page


def test_isolated_escapes_what_it_isolates():
    from console.security import isolated
    assert str(isolated("name '<b>ש</b>' and 'x' <i>")) == \
        "name &#39;<bdi>&lt;b&gt;ש&lt;/b&gt;</bdi>&#39; and &#39;x&#39; &lt;i&gt;"
    assert str(isolated("subject=\"<script>ש\"", fact=True)) == \
        "subject=&#34;<bdi>&lt;script&gt;ש</bdi>&#34;"
    assert str(isolated("file=\"<script>ש\"", fact=True)) == \
        'file=&#34;<bdi dir="ltr">&lt;script&gt;ש</bdi>&#34;'
    # left-to-right text needs no isolate
    assert str(isolated("subject 'Grüße' matches '*grüße*'")) == \
        "subject &#39;Grüße&#39; matches &#39;*grüße*&#39;"
    assert str(isolated(None)) == ""


def test_apostrophes_in_prose_are_no_quotes():
    """review19 r4 C3: the apostrophes of "it's" and "don't" paired up, isolating the prose
    between them and leaving the real quoted value after them as it was."""
    from console.security import isolated
    assert str(isolated("it's א and don't: 'ש'")) == \
        "it&#39;s א and don&#39;t: &#39;<bdi>ש</bdi>&#39;"


def test_identifiers_escape_and_isolate_each():
    from console.security import identifiers
    assert str(identifiers(["<ש>@x.test", "b@y.test"])) == \
        '<bdi dir="ltr">&lt;ש&gt;@x.test</bdi>, b@y.test'
    assert str(identifiers("\u202eא.exe")) == '<bdi dir="ltr">\u27e8U+202E\u27e9א.exe</bdi>'
    assert str(identifiers(None)) == "" and str(identifiers([])) == ""
