"""The console's markup for assistive technology (findings15/accessibility.md, WCAG 2.1 AA):
page titles that name the page and its tab (C6), table headers with scope (C9), a skip link
first (C10), flashes as live regions and in the title (C11), required fields marked (C12),
the Detail Report's scroll region (C2), chart colours and headings (C13), ids unique on a page
(C14) and tab strips as named navigation (C15). The 400 px reflow itself is drawn by a browser:
tests/browser/test_reflow_browser.py."""

from __future__ import annotations

import collections
import json
from html.parser import HTMLParser

import pytest

from console.reporting.charts import top_chart_svg
from console.status.chart import SERIES_STYLE
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from tests.console.test_configuration import _form_fields
from tests.console.test_virus_quarantine_delete import _quarantine

# Every page the left pane and the tabs reach, as the accessibility tester's crawl walked them.
TAB_TITLES = {
    "/status/": "Status · Mailmoat",
    "/configuration/accounts": "Accounts · Configuration · Mailmoat",
    "/configuration/setup": "Setup · Configuration · Mailmoat",
    "/configuration/hold": "Hold Queue · Configuration · Mailmoat",
    "/configuration/scan-policy": "Scan Policy · Configuration · Mailmoat",
    "/configuration/routing": "Routing · Configuration · Mailmoat",
    "/configuration/alerts": "Alerts · Configuration · Mailmoat",
    "/configuration/notifications": "Notifications · Configuration · Mailmoat",
    "/configuration/logging": "Logging · Configuration · Mailmoat",
    "/configuration/diagnostics": "Diagnostics · Configuration · Mailmoat",
    "/configuration/setup/certificates":
        "Certificate Management · Setup · Configuration · Mailmoat",
    "/antivirus/": "Antivirus Settings · Antivirus Policy · Mailmoat",
    "/antivirus/outbreak": "Outbreak Alert · Antivirus Policy · Mailmoat",
    "/antivirus/quarantine": "Virus Quarantine · Antivirus Policy · Mailmoat",
    "/antispam/whitelist": "Whitelist · Anti-spam Policy · Mailmoat",
    "/antispam/auto-whitelist": "Auto-generated Whitelist · Anti-spam Policy · Mailmoat",
    "/antispam/rbl": "Real-time Blacklists · Anti-spam Policy · Mailmoat",
    "/antispam/blacklist": "Custom Blacklist · Anti-spam Policy · Mailmoat",
    "/antispam/heuristic": "Heuristic Engine · Anti-spam Policy · Mailmoat",
    "/antispam/spam-rules": "Spam Rules · Anti-spam Policy · Mailmoat",
    "/antispam/premium": "Premium AntiSpam · Anti-spam Policy · Mailmoat",
    "/filtering/content": "Content · Filtering Policy · Mailmoat",
    "/filtering/container-limits": "Container Limits · Filtering Policy · Mailmoat",
    "/filtering/encrypted-container": "Encrypted Container · Filtering Policy · Mailmoat",
    "/filtering/anti-relay": "Anti-Relay · Filtering Policy · Mailmoat",
    "/filtering/content-rules": "Content Rules · Filtering Policy · Mailmoat",
    "/quarantine/": "Spam Quarantine · Mailmoat",
    "/reporting/summary": "Summary Report · Reporting · Mailmoat",
    "/reporting/detail": "Detail Report · Reporting · Mailmoat",
    "/liveupdate/": "LiveUpdate · Mailmoat",
    "/licensing/": "Licensing · Mailmoat",
}
TABBED_AREAS = {"/configuration/": "Configuration", "/antivirus/": "Antivirus Policy",
                "/antispam/": "Anti-spam Policy", "/filtering/": "Filtering Policy",
                "/reporting/": "Reporting"}
ROUTE = {"match": "example.test", "relay": "127.0.0.1", "port": 2525}
RULE = {"enabled": True, "name": "offers", "match": "any", "terms": ["lottery"], "none_of": []}


class Page(HTMLParser):
    """The parts of a page these tests read: every start tag with its attributes, and the
    page's title."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.title = ""
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title" and not self.title  # the page's, not an SVG's

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def page_of(admin, url: str) -> Page:
    response = admin.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return Page(response.get_data(as_text=True))


def _hold(home, queue_id: str) -> None:
    """A message in the hold queue as the core leaves one (tests/console/test_configuration)."""
    folder = home.queue("hold") / queue_id
    folder.mkdir(parents=True)
    (folder / "envelope.json").write_text(json.dumps({
        "format": 1, "queue_id": queue_id, "sender": "a@example.com",
        "recipients": [{"address": "b@example.net", "status": "pending"}],
        "received_at": 1_800_000_000.0, "size": 10, "hold_reason": "held"}))
    (folder / "message").write_bytes(b"Subject: x\r\n\r\nbody\r\n")


@pytest.fixture
def filled(admin, home):
    """A console with a routing entry, a content rule, a held message and a virus quarantine
    copy, so their tables and edit pages are drawn."""
    admin.set(routing__local=[ROUTE], rules__content=[RULE])
    _hold(home, "q1aaaa")
    _quarantine(home, "0AAAAAAAAAAA", "Invoice")
    return admin


@pytest.mark.parametrize("url", sorted(TAB_TITLES))
def test_the_title_names_the_page_and_its_tab(filled, url):
    assert " ".join(page_of(filled, url).title.split()) == TAB_TITLES[url]


@pytest.mark.parametrize(("url", "title"), [
    ("/configuration/routing/local/0", "Edit local routing entry · Routing · Configuration"),
    ("/filtering/content-rules/0", "Edit content rule 1 · Content Rules · Filtering Policy"),
])
def test_an_edit_page_names_itself_before_its_tab(filled, url, title):
    assert page_of(filled, url).title == f"{title} · Mailmoat"


def test_a_confirmation_page_names_itself(admin, home):
    _hold(home, "q1aaaa")
    page = Page(admin.post("/configuration/hold/confirm", {"drop": "Drop Messages"})
                .get_data(as_text=True))
    assert page.title == ("Dropping Hold Queue Messages · Hold Queue · Configuration · "
                          "Mailmoat")


def test_a_refused_save_says_error_in_the_title(admin):
    response = admin.post("/configuration/setup", {"smtp__port": "abc", "save": "1"})
    assert response.status_code == 200
    assert Page(response.get_data(as_text=True)).title == \
        "Error: Setup · Configuration · Mailmoat"


def test_a_saved_change_is_a_status_message_and_in_the_title(admin):
    data = _form_fields(admin, "/filtering/content")
    data["subject__lines"] = "*lottery*"
    response = admin.post("/filtering/content", data)
    assert response.status_code == 302
    html = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert '<p class="flash info" role="status">Changes saved.</p>' in html
    # a live region already in a page when it loads is not read out; its title is
    assert Page(html).title == "Changes saved. – Content · Filtering Policy · Mailmoat"


def test_an_error_flash_is_an_alert_and_in_the_title(filled):
    # deleting a rule the page no longer shows as it is stored is refused with a flash
    response = filled.post("/filtering/content-rules/0/delete", {"del0-original": "stale"})
    assert response.status_code == 302
    html = filled.get(response.headers["Location"]).get_data(as_text=True)
    page = Page(html)
    assert [a.get("role") for a in page.all("p") if a.get("class") == "flash error"] == ["alert"]
    assert page.title.startswith("Error: ")
    assert page.title.endswith(" – Content Rules · Filtering Policy · Mailmoat")


@pytest.mark.parametrize("url", sorted(TAB_TITLES))
def test_ids_are_unique_on_every_page(filled, url):
    ids = collections.Counter(a["id"] for _t, a in page_of(filled, url).tags if "id" in a)
    assert [i for i, n in ids.items() if n > 1] == []


@pytest.mark.parametrize("url", sorted(TAB_TITLES))
def test_every_table_header_has_a_scope(filled, url):
    headers = page_of(filled, url).all("th")
    assert [h for h in headers if h.get("scope") not in ("col", "row")] == []


@pytest.mark.parametrize("url", sorted(TAB_TITLES))
def test_the_first_link_skips_to_the_main_content(filled, url):
    page = page_of(filled, url)
    first = next(attrs for tag, attrs in page.tags if tag in ("a", "input", "button"))
    assert first == {"class": "skip-link", "href": "#main"}
    [main] = page.all("main")
    assert main["id"] == "main"


def test_the_logon_page_has_the_skip_link_too(console):
    page = Page(console.get("/logon").get_data(as_text=True))
    assert next(a for t, a in page.tags if t == "a")["href"] == "#main"


@pytest.mark.parametrize(("url", "area"), [
    ("/configuration/setup", "Configuration"), ("/antivirus/", "Antivirus Policy"),
    ("/antispam/whitelist", "Anti-spam Policy"), ("/filtering/content", "Filtering Policy"),
    ("/reporting/summary", "Reporting")])
def test_the_tab_strip_is_a_named_navigation(admin, url, area):
    html = admin.get(url).get_data(as_text=True)
    assert f'<nav aria-label="{area} tabs">\n<ul class="tabs" role="list">' in html


def test_the_certificate_request_marks_its_required_fields(admin):
    html = admin.get("/configuration/setup/certificates").get_data(as_text=True)
    form = html.split('id="request-form"', 1)[1].split("</form>", 1)[0]
    page = Page(form)
    required = {a["id"] for a in page.all("input") if "required" in a}
    assert required == {f"request-{name}" for name in
                        ("common_name", "organization", "city", "state", "country", "email")}
    for field in required:
        label = form.split(f'<label for="{field}">', 1)[1].split("</label>", 1)[0]
        assert label.endswith('<span class="required">(required)</span>'), label
    unit = form.split('<label for="request-unit">', 1)[1].split("</label>", 1)[0]
    assert "required" not in unit


def test_the_detail_report_scroll_area_is_a_named_focusable_region(admin, clock):
    writer = EventWriter(admin.home.db, "core", FakeClock(clock.now() - 600))
    writer.record(Action.ACCEPTED, queue_id="Q001", sender="a@example.com",
                  recipients=["b@example.net"], subject="hello")
    writer.close()
    html = admin.get("/reporting/detail?generated=1&start=2027-01-14T08:00"
                     "&end=2027-01-15T08:00").get_data(as_text=True)
    [scroller] = [a for a in Page(html).all("div") if a.get("class") == "table-scroll"]
    assert scroller == {"class": "table-scroll", "tabindex": "0", "role": "region",
                        "aria-labelledby": "report-title detail-count"}
    assert 'id="report-title"' in html and 'id="detail-count"' in html


def test_the_status_chart_scrolls_in_a_named_focusable_region(admin):
    page = page_of(admin, "/status/")
    [region] = [a for a in page.all("div") if a.get("class") == "chart-scroll"]
    assert (region["tabindex"], region["role"]) == ("0", "region")
    assert region["aria-label"]


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("series", sorted(SERIES_STYLE))
def test_every_chart_colour_has_3_to_1_contrast_on_white(series):
    """WCAG 1.4.11: graphics needed to understand the chart (the bars) against the chart's
    white background."""
    contrast = 1.05 / (_luminance(SERIES_STYLE[series][1]) + 0.05)
    assert contrast >= 3, (series, round(contrast, 2))


def test_a_top_chart_title_is_a_heading_not_svg_text():
    chart = str(top_chart_svg("top-viruses", "Top viruses", [("EICAR-Test-File", 3)]))
    assert chart.startswith('<h3 class="chart-heading" id="top-viruses-heading">Top viruses</h3>')
    svg = chart.split("<svg", 1)[1]
    assert ">Top viruses</text>" not in svg
