"""Antispam engines (SPEC §3 Antispam, §5 step 5): the heuristic engine (tokenizer, rules,
classifier, trained definitions), sender lists, the auto-generated whitelist and spam
handling. The pipeline checks that use them live in core/pipeline/checks/ (antispam,
blacklist, rbl, spam_rules, whitelist)."""

from core.scan.antispam.definitions import SpamDefinitions, current as current_definitions
from core.scan.antispam.engine import HeuristicEngine, SpamScore, threshold_for

__all__ = ["HeuristicEngine", "SpamScore", "SpamDefinitions", "current_definitions",
           "threshold_for"]
