"""Structural tokens of the heuristic engine (core/scan/antispam/structure.py): each feature
fires on a small made-up message built to show it and not on a plain personal message; the
engine's feature set carries them, so the training and the engine weigh the same tokens."""

from __future__ import annotations

import pytest

from core.scan.antispam import definitions as defs
from core.scan.antispam.engine import HeuristicEngine, features
from core.scan.antispam.structure import structure_tokens
from core.scan.antispam.training import view_of

PLAIN_HEADERS = {
    "Return-Path": "<alice@example.org>",
    "Received": "from mail.example.org (mail.example.org [192.0.2.10]) by mx.example.net "
                "with ESMTP id 1; Mon, 12 Aug 2002 10:00:05 +0100",
    "From": "Alice Example <alice@example.org>",
    "To": "Bob <bob@example.net>",
    "Subject": "lunch on Friday",
    "Date": "Mon, 12 Aug 2002 10:00:00 +0100",
    "Message-ID": "<20020812090000.GA123@mail.example.org>",
    "MIME-Version": "1.0",
    "User-Agent": "Mutt/1.4i",
    "Content-Type": "text/plain; charset=us-ascii",
}
PLAIN_BODY = "Shall we meet at noon? The usual place.\n"


def _raw(headers: dict, body: str) -> bytes:
    lines = [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def _tokens(body: str = PLAIN_BODY, **changes) -> set[str]:
    headers = dict(PLAIN_HEADERS)
    for key, value in changes.items():
        headers[key.replace("_", "-")] = value
    return structure_tokens(view_of(_raw(headers, body)))


HTML_PAGE = ('<html><body bgcolor="#ffffff"><p>Hello there, this is the news of the week '
             'with plenty of words so that the text is not tiny.</p>{}</body></html>')


def _html(fragment: str) -> dict:
    return {"body": HTML_PAGE.format(fragment),
            "Content_Type": "text/html; charset=us-ascii"}


CASES = {
    # bulk-sender headers and whether they agree with the sender
    "x:bulk:list": {"List_Id": "<news.example.org>"},
    "x:bulk:unsub_same": {"List_Unsubscribe": "<mailto:leave-1@example.org>"},
    "x:bulk:unsub_diff": {"List_Unsubscribe": "<http://optout.example.com/x>"},
    "x:bulk:prec_bulk": {"Precedence": "bulk"},
    "x:bulk:verp": {"Return_Path": "<bounce-news-949326@example.org>"},
    "x:bulk:rp_empty": {"Return_Path": "<>"},
    "x:bulk:errors_to": {"Errors_To": "admin@example.org"},
    # Date against the sender-side Received hop
    "x:date:missing": {"Date": None},
    "x:date:bad": {"Date": "sometime last week"},
    "x:date:future6": {"Date": "Mon, 12 Aug 2002 20:00:00 +0100"},
    "x:date:past720": {"Date": "Mon, 01 Jan 2001 10:00:00 +0100"},
    "x:date:named_zone": {"Date": "Mon, 12 Aug 2002 09:00:00 GMT"},
    # Message-ID shape against the mail program
    "x:mid:missing": {"Message_ID": None},
    "x:mid:no_at": {"Message_ID": "<20020812090000.GA123>"},
    "x:mid:host_local": {"Message_ID": "<123.456@localhost>"},
    "x:mua:forged_outlook": {"User_Agent": None,
                             "X_Mailer": "Microsoft Outlook Express 6.00.2600.0000"},
    "x:mua:oe_no_mimeole": {"User_Agent": None, "Message_ID": "<002a01c24a99$f8570760$603a2f18@pc>",
                            "X_Mailer": "Microsoft Outlook Express 6.00.2600.0000"},
    "x:mua:oe_mid_other_mailer": {"Message_ID": "<002a01c24a99$f8570760$603a2f18@pc>"},
    # From / To shapes
    "x:from:bare_address": {"From": "alice@example.org"},
    "x:from:empty_name": {"From": "<alice@example.org>"},
    "x:from:name_has_address": {"From": '"alice@example.org" <alice@example.org>'},
    "x:from:name_caps": {"From": "BEST OFFERS <alice@example.org>"},
    "x:from:local_digits": {"From": "Alice <alice8273@example.org>"},
    "x:to:missing": {"To": None},
    "x:to:no_address": {"To": "Undisclosed-Recipient:;"},
    "x:to:equals_from": {"To": "alice@example.org"},
    # Received hops
    "x:rcvd:helo_ip": {"Received": "from [192.0.2.10] (mail.example.org [192.0.2.10]) by "
                                   "mx.example.net; Mon, 12 Aug 2002 10:00:05 +0100"},
    "x:rcvd:no_rdns": {"Received": "from mail.example.org ([192.0.2.10]) by mx.example.net; "
                                   "Mon, 12 Aug 2002 10:00:05 +0100"},
    "x:rcvd:helo_mismatch": {"Received": "from mail.example.com (host.example.org [192.0.2.10]) "
                                         "by mx.example.net; Mon, 12 Aug 2002 10:00:05 +0100"},
    "x:rcvd:dynamic": {"Received": "from pc (adsl-192-0-2-10.isp.example [192.0.2.10]) by "
                                   "mx.example.net; Mon, 12 Aug 2002 10:00:05 +0100"},
    # Subject shape
    "x:subj:bang3": {"Subject": "WIN NOW!!!"},
    "x:subj:reply_no_thread": {"Subject": "Re: your account"},
    "x:subj:number_id": {"Subject": "your offer 48213"},
    # HTML tricks
    "x:html:tiny_font": _html('<font size="1">small print</font>'),
    "x:html:hidden": _html('<div style="display:none">hidden words</div>'),
    "x:html:comment_in_word": _html("V<!-- x -->iagra"),
    "x:html:tag_in_word": _html("vi<b>agra</b>"),
    "x:html:entity_run": _html("&#86;&#105;&#97;&#103;&#114;&#97;"),
    "x:html:font_is_background": _html('<font color="#ffffff">invisible</font>'),
    "x:html:iframe": _html('<iframe src="http://example.com/"></iframe>'),
    "x:url:anchor_other_site": _html('<a href="http://evil.example.com/">'
                                     'http://www.bank.example.org/</a>'),
    "x:html:images_no_text": {"body": '<html><body><img src="http://example.com/a.gif">'
                                      '</body></html>',
                              "Content_Type": "text/html; charset=us-ascii"},
    # URLs
    "x:url:shortener": {"body": "see http://tinyurl.com/abc123\n"},
    "x:url:odd_host": {"body": "see http://www.a1b2c3.example.com/\n"},
    # encoding
    "x:enc:b64_plain": {"body": "U2hhbGwgd2UgbWVldCBhdCBub29uPw==\n",
                        "Content_Transfer_Encoding": "base64"},
    "x:enc:no_charset": {"Content_Type": "text/plain"},
    "x:enc:ascii_8bit": {"body": "Caf\u00e9 at noon? The usual place.\n"},
    "x:mime:no_version": {"MIME_Version": None},
}


def test_a_plain_message_shows_none_of_them():
    found = _tokens()
    assert not found & set(CASES), found & set(CASES)
    assert "x:mua:unix" in found and "x:rcvd:sender_host" in found


@pytest.mark.parametrize("token", sorted(CASES))
def test_each_feature_fires_on_a_message_built_to_show_it(token):
    changes = dict(CASES[token])
    body = changes.pop("body", PLAIN_BODY)
    assert token in _tokens(body, **changes)


def test_multipart_alternative_with_different_text_and_html():
    body = ("--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nshort\r\n"
            "--b\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body>"
            + " word" * 60 + "</body></html>\r\n--b--\r\n")
    found = _tokens(body, Content_Type='multipart/alternative; boundary="b"')
    assert "x:mime:alt_differs" in found


def test_never_raises_on_garbage_headers():
    found = _tokens("\x00\x01", From="<<<@@@>>>", Date="\x00", Message_ID="@",
                    Received="from (", To="")
    assert isinstance(found, set)


def test_the_engine_weighs_them():
    view = view_of(_raw(dict(PLAIN_HEADERS, Subject="WIN NOW!!!"), PLAIN_BODY))
    found, _ = features(view, defs.load(defs.PACKAGED_DIR))
    assert structure_tokens(view) <= found and "x:subj:bang3" in found
    # the shipped model was trained with them: some carry a weight
    definitions = defs.load(defs.PACKAGED_DIR)
    assert sum(1 for name in definitions.weights if name.startswith("x:")) > 50
    assert 1 <= HeuristicEngine(definitions).score(view).score <= 100
