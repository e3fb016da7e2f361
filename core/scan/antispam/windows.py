"""Windowed scoring: padding cannot pull a spam's own words down (docs/antispam-model.md,
"Windowed scoring (twenty-first session)").

What it owns
    Padding — ordinary text appended or prepended to a spam — adds hundreds of words that
    each weigh a little towards ham, and their sum took a spam scoring 100 down to 1. Here
    the text a sender writes is read in windows of `words` words (each text part's own
    text, split at white space), and

        windowed = bias + the weights of every feature that is not text (rule 7: those
                   towards ham at most whole_cap in all) + the weights of the text
                   features no window makes (rule 5: in a "spam_side" set, of those that
                   weigh towards spam) + max over the windows of the sum of the weights of
                   that window's text features (rule 6: its URL features only if they weigh
                   towards spam)
        z        = max(sum, windowed - delta)

    so a block of padding can only take what shares its window. A ham keeps its own words'
    evidence inside each window, and `delta` keeps the windowed reading below the sum where
    the two nearly agree. The definitions say whether and how (`SpamDefinitions.windows`):
    a set without it scores the plain sum.

Rules
    1. Text features are those a sender adds at will with the text itself: words of the
       text (no prefix), `skip:`, `email:`, `C:` upper-case words, `u:`/`up:` URLs
       (`is_text_feature`). Everything else — headers, Subject, structure, rule hits,
       buckets — is read whole, as before.
    2. A window's features are the tokenizer's own (tokenizer.window_tokens, over the parts
       `tokens` read) and only those the message's feature set holds, so a window never
       counts a feature the sum does not. A text feature no window makes (an HTML link's
       URL, which is in the markup, not the text) counts once, at its full weight, outside
       the windows — in a "spam_side" set only if it weighs towards spam (rule 5). Only
       windows holding a weighed feature compete for the best: one of words the model does
       not know is no window of 0, which would lift a message whose every window weighs
       towards ham to the windows' neutral point.
    3. Only when it can matter: with the text's negative evidence no larger than `delta`
       and no rule 7 lift, or the sum already at score 100, the windows cannot change the
       score and are not read (`windowed_raw`); the score is the same either way.
    4. Sums are exact (`math.fsum`), so a score does not depend on the order a set of
       features is read in, which changes from process to process with the hash seed.
    5. Links pad no more than text (the set's "off_window": "spam_side"; docs/
       antispam-model.md, "Links as padding (twenty-sixth session)"): the URLs of hidden
       HTML links weigh towards ham as much as the sender likes, and no window bounds them,
       so in the windowed reading a text feature no window makes counts only if it weighs
       towards spam. The plain sum keeps them all;
       with no window holding a weighed feature the windowed reading is the rest, `delta`
       below. "whole" (the default, rev 6) counts them at their full weight.
    6. URLs pad no more than words (the set's "urls": "spam_side", with rule 5; docs/
       antispam-model.md, "URLs as padding (twenty-sixth session)"): a URL written as text
       is in a window, and one makes up to about 11 features (its host and each parent
       domain, each word of its path), so URLs spread through a spam's own windows pulled
       each window down as a few hundred words would. In the windowed reading a URL feature
       (`u:`, `up:`) counts only if it weighs towards spam, in a window or not; a window
       whose weighed features were all such URLs is no window (rule 2). The plain sum keeps
       them all.
    7. What is read whole pads no more than `whole_cap` (the set's "whole_ham_cap"; docs/
       antispam-model.md, "Header fields as padding (twenty-eighth session)"): header fields,
       the Subject and the message's structure are read whole (rule 1), and a sender writes
       them at will, so fields holding the tokens that weigh most towards ham (In-Reply-To,
       User-Agent, Precedence: list...) took most caught spam out. In the windowed reading
       the features that are not text count towards ham at most `whole_cap` in all: when
       their weights below 0 sum to less than -whole_cap, the reading is lifted by the
       difference. Towards spam they count in full, and the plain sum keeps them all. None
       (the key absent, revs 6-8) leaves them uncapped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

__all__ = ["Windows", "is_text_feature", "windowed_raw", "TEXT_PREFIXES", "URL_PREFIXES",
           "SIDES", "OFF_WINDOW_KEY", "URLS_KEY", "WHOLE_CAP_KEY"]

URL_PREFIXES = ("u:", "up:")
TEXT_PREFIXES = ("skip:", "email:", "C:", *URL_PREFIXES)


# rules 5 and 6: the set's "scoring" keys, and their values, the first the default (the key
# absent): evidence counted whole, or only towards spam
OFF_WINDOW_KEY = "off_window"
URLS_KEY = "urls"
SIDES = ("whole", "spam_side")
WHOLE_CAP_KEY = "whole_ham_cap"         # rule 7: the set's "scoring" key; absent, no cap


@dataclass(frozen=True)
class Windows:
    """How a definitions set reads windows: `words` per window, `delta` below the sum, how
    a text feature no window makes counts (rule 5), how a URL feature counts (rule 6,
    which reads rule 5's too) and how much what is read whole counts towards ham (rule 7;
    None: all of it)."""
    words: int
    delta: float
    off_window: str = SIDES[0]
    urls: str = SIDES[0]
    whole_cap: float | None = None

    def __post_init__(self):
        if self.urls != SIDES[0] and self.off_window != self.urls:
            raise ValueError(f"{URLS_KEY} {self.urls} needs {OFF_WINDOW_KEY} {self.urls}: "
                             f"rule 6 reads the windows as rule 5 does")


def is_text_feature(feature: str) -> bool:
    """Rule 1."""
    return ":" not in feature or feature.startswith(TEXT_PREFIXES)


def windowed_raw(found, window_sets: Iterable[set[str]], weights: dict[str, float],
                 bias: float, windows: Windows, ceiling: float = math.inf) -> float:
    """z of the module docstring for a message's feature set `found` and the text tokens
    of its windows (tokenizer.window_tokens, read only when needed: rule 3); `ceiling`:
    the raw score from which the score is 100 anyway."""
    get = weights.get
    found_weights = [bias]
    negatives = []
    whole_negatives = []
    text = set()
    for feature in found:
        weight = get(feature, 0.0)
        found_weights.append(weight)
        if not weight:
            continue
        if is_text_feature(feature):
            text.add(feature)
            if weight < 0:
                negatives.append(weight)
        elif weight < 0:
            whole_negatives.append(weight)
    total = math.fsum(found_weights)            # rule 4
    negative = math.fsum(negatives)
    lift = 0.0
    if windows.whole_cap is not None:           # rule 7
        lift = max(0.0, -math.fsum(whole_negatives) - windows.whole_cap)
    if total >= ceiling or (-negative <= windows.delta and not lift):
        return total                            # rule 3
    covered: set[str] = set()
    best = None
    counted = text
    if windows.urls == "spam_side":             # rule 6
        counted = {f for f in text if not (f.startswith(URL_PREFIXES) and get(f) < 0)}
    for window in window_sets:
        mine = window & counted
        if not mine:
            continue
        score = math.fsum(get(f) for f in mine)
        best = score if best is None or score > best else best
        covered |= mine
    left_out = (math.fsum(w for f in text - covered if (w := get(f)) < 0)    # rules 5, 6
                if windows.off_window == "spam_side" else 0.0)
    if best is None and not left_out:
        return max(total, total + lift - windows.delta)
    covered_sum = math.fsum(get(f) for f in covered)
    return max(total, total - covered_sum - left_out + (best or 0.0) + lift - windows.delta)
