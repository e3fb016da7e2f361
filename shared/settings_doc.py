"""docs/settings.md, generated from the settings schema so the reference never drifts from it.

Regenerate after any change to `shared/settings.py`:

    python -m shared.settings_doc > docs/settings.md

`tests/unit/test_settings_doc.py` fails while the committed file differs from `render()`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shared.ports import HOST_CHECKS
from shared.settings import PAGES, SCHEMA, Setting
from shared.settings_cross_rules import CROSS_RULES
from shared.settings_types import Nullable

__all__ = ["render"]

REGENERATE = "python -m shared.settings_doc > docs/settings.md"
# The pages whose console page lists the settings in force and edits none (console/
# placeholders.py `settings_sections`, until their issues build the editors; settings20 C4).
# tests/console/test_settings_doc_pages.py holds the console pages to it.
LISTED_ONLY_PAGES = ("premium", "quarantine", "ldap", "liveupdate")

_HEADER = f"""\
# Mailmoat settings

Every setting Mailmoat knows, grouped by the console page that edits it. Generated from
`shared/settings.py` by `{REGENERATE}`; do not edit by hand.

Read a value with `mailmoat config get KEY`, change it with `mailmoat config set KEY VALUE`
(VALUE is JSON, or the bare text for text settings, `-SPAM-` and `-- SPAM --` too; one spelled
like an option goes after `--`: `mailmoat config set KEY -- --home`; left out, it is read from
standard input, as a list of thousands of entries must be:
`mailmoat config set whitelist.custom < list.json`),
or on the console page named in the heading, but for the pages of features not built yet, which
only list their values as `config get` shows them (change those with `config set`):
{", ".join(PAGES[page] for page in LISTED_ONLY_PAGES)}.
Every change is validated by the same rules and applies within 2 seconds unless the
*Restart* column says yes. The *Type* column gives the limits a value is held to by itself: a text's
length (`notify.admin.body`: ≤{SCHEMA["notify.admin.body"].kind.max_len} characters) and a list's entries (`whitelist.custom`:
≤{SCHEMA["whitelist.custom"].kind.max_items}); "header text" becomes header text of mail (a
Subject), so it holds no control character but tab and no text-direction embedding or override. Secrets are never printed: `config get` shows them as `"***"` (set) or `null`,
and a URL's credentials as `"https://user:***@host/"`, as the change's event, the reports and
the Configuration Change alert do; given back, either is refused (`config export` keeps them).

A value is held besides to the rules that span keys (`heuristic.forward_score` below
`heuristic.drop_score`), and to a few of its own key that its Type cannot say: each ends the
Help of the keys it reads ("Rules: …"), and all are listed under
[Rules that span keys](#rules-that-span-keys) at the end. A change is checked against the
rules of the keys it changes, and against a rule that spans keys when it changes one of them.
A value an older release stored that a rule of this one refuses therefore blocks no other
change; the Status page lists it ("Upgrading" in [operations.md](operations.md)).
"""


def _text(value: str) -> str:
    """Text for a table cell: Markdown and table syntax escaped, `code spans` kept as such."""
    balanced = value.count("`") % 2 == 0  # unbalanced: no code spans, escape the backtick
    pieces = value.split("`") if balanced else [value]
    special = "\\*_[]<>|" + ("" if balanced else "`")
    out = []
    for index, piece in enumerate(pieces):
        if index % 2:  # inside a code span only the table's pipe needs escaping
            out.append("`" + piece.replace("|", "\\|") + "`")
            continue
        for char in special:
            piece = piece.replace(char, "\\" + char)
        out.append(piece)
    return "".join(out)


def _code(value: str) -> str:
    """A code span for a table cell (pipes still need escaping inside GFM tables)."""
    value = value.replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _default(setting: Setting) -> str:
    if setting.generated is not None:
        return "(generated)"
    if setting.secret is not None:
        return "(secret)"
    return _code(json.dumps(setting.default, ensure_ascii=False))


def _type(setting: Setting) -> str:
    """The Type cell: the kind's limits. A key with a `null_rule` is null only before `init`
    and no change may set null, so its type is the inner kind's (settings20 C5:
    `admin.password` read "null or text")."""
    kind = setting.kind
    if setting.null_rule is not None and isinstance(kind, Nullable):
        kind = kind.inner
    return kind.describe()


def _cross_rules() -> dict[str, set[str]]:
    """{sentence: keys} of the rules that span keys (CrossRule.says), in registration order;
    rules saying the same sentence (the port pairs) are one, reading all their keys."""
    rules: dict[str, set[str]] = {}
    for rule in CROSS_RULES:
        rules.setdefault(rule.says, set()).update(rule.keys)
    return rules


_RULES_HEADING = "Rules that span keys"


def _rules_section(rules: dict[str, set[str]]) -> str:
    """The closing section: every rule once, with the keys it reads in schema order."""
    order = {key: index for index, key in enumerate(SCHEMA)}
    lines = [f"\n## {_RULES_HEADING}\n\n",
             "Checked when a change touches one of the rule's keys; a key's row ends with its "
             "rules too.\n\n",
             "| Rule | Keys |\n", "|---|---|\n"]
    for says, keys in rules.items():
        named = ", ".join(_code(key) for key in sorted(keys, key=order.__getitem__))
        lines.append(f"| {_text(says)} | {named} |\n")
    return "".join(lines)


def _row(setting: Setting, rules: dict[str, set[str]]) -> str:
    help_text = _text(setting.help)
    its_rules = [says for says, keys in rules.items() if setting.key in keys]
    if its_rules:
        help_text += " Rules: " + " ".join(_text(says) for says in its_rules)
    if setting.key in HOST_CHECKS:
        help_text += " This host: " + _text(HOST_CHECKS[setting.key]) + "."
    cells: list[Any] = [
        _code(setting.key),
        _text(_type(setting)),
        _default(setting),
        "yes" if setting.restart else "no",
        help_text,
    ]
    return "| " + " | ".join(cells) + " |"


def render() -> str:
    """The whole of docs/settings.md."""
    by_page: dict[str, list[Setting]] = {page: [] for page in PAGES}
    for setting in SCHEMA.values():
        by_page[setting.page].append(setting)
    rules = _cross_rules()
    parts = [_HEADER]
    for page, title in PAGES.items():
        settings = by_page[page]
        if not settings:
            continue
        parts.append(f"\n## {title}\n\n")
        parts.append("| Key | Type | Default | Restart | Help |\n")
        parts.append("|---|---|---|---|---|\n")
        parts.extend(_row(setting, rules) + "\n" for setting in settings)
    parts.append(_rules_section(rules))
    return "".join(parts)


def main() -> int:
    sys.stdout.buffer.write(render().encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
