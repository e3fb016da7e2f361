"""No handler in the work on a message swallows the MemoryError of the limit per message
(core/pipeline/run.py rule 5: a MemoryError anywhere in the work is one scan_error finding
of rule pipeline.memory_limit).

Regression, review18 R5a: MemoryError is an Exception, so `except Exception` handlers in
the decomposer and the scanners turned it into something else: the builtin engine quietly
stopped unpacking (core/scan/unpack.py `_produced`: content unscanned, no finding), a
heuristic was skipped, an encoded word became a "bad encoded word" defect.

The walk is this suite's rule for new code, as tests/console/test_access.py walks the URL
map: a handler that catches Exception or BaseException (or everything) in core/pipeline or
core/scan re-raises, or an earlier handler of its `try` lets MemoryError through
(`except MemoryError: raise`), or it is listed in REVIEWED with the reason it may stay.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.pipeline.decompose import content_fields
from core.scan import unpack

ROOT = Path(__file__).resolve().parents[3]
WALKED = ("core/pipeline", "core/scan")
BROAD = {"Exception", "BaseException"}

# (file, function or class) -> why its broad handlers may catch a MemoryError and not
# re-raise it
REVIEWED = {
    ("core/pipeline/workers.py", "run_batch"):
        "outside the limit (run.py turns the limit's MemoryError into a finding first); an "
        "item's exception goes back to the core as its failure, which raises it there",
    ("core/pipeline/workers.py", "WorkerBatcher"):
        "the core process: a round trip that failed is handed to its callers (finish)",
    ("core/scan/service.py", "virus_quarantine_entries"):
        "the core process (the console's listing), where no limit per message applies",
    ("core/scan/central_forwarder.py", "CentralForwarder._pending"):
        "the core process, where no limit per message applies",
}


def _names(node: ast.expr | None) -> set[str]:
    """The exception class names a handler's type names (None: a bare except)."""
    if node is None:
        return {"BaseException"}
    if isinstance(node, ast.Tuple):
        return set().union(*(_names(element) for element in node.elts))
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    return set()


def _reraises(handler: ast.ExceptHandler) -> bool:
    last = handler.body[-1]
    return isinstance(last, ast.Raise) and last.exc is None


class _Walk(ast.NodeVisitor):
    def __init__(self, path: str):
        self.path, self.scope, self.found = path, [], []

    def _scoped(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Try(self, node):
        passed = False                    # an earlier handler lets MemoryError through
        for handler in node.handlers:
            names = _names(handler.type)
            if "MemoryError" in names and _reraises(handler):
                passed = True
            elif names & BROAD and not passed and not _reraises(handler):
                self.found.append((self.path, ".".join(self.scope) or "<module>",
                                   handler.lineno))
        self.generic_visit(node)

    visit_TryStar = visit_Try


def _swallowing() -> list[tuple[str, str, int]]:
    found = []
    for top in WALKED:
        for file in sorted((ROOT / top).rglob("*.py")):
            path = file.relative_to(ROOT).as_posix()
            walk = _Walk(path)
            walk.visit(ast.parse(file.read_text(), path))
            found += walk.found
    return found


def _reviewed(site: tuple[str, str, int], key: tuple[str, str]) -> bool:
    return site[0] == key[0] and (site[1] == key[1] or site[1].startswith(key[1] + "."))


def test_no_broad_handler_in_the_work_swallows_a_memory_error():
    unreviewed = [site for site in _swallowing()
                  if not any(_reviewed(site, key) for key in REVIEWED)]
    assert unreviewed == [], (
        "add `except MemoryError: raise` before these handlers (run.py rule 5), or list "
        "them in REVIEWED with the reason")


def test_every_reviewed_handler_is_still_there():
    found = _swallowing()
    assert [key for key in REVIEWED if not any(_reviewed(site, key) for site in found)] == []


def test_the_walk_sees_a_broad_handler_and_one_that_lets_memory_errors_through():
    source = ("def bad():\n    try:\n        pass\n    except Exception:\n        pass\n"
              "def good():\n    try:\n        pass\n    except MemoryError:\n        raise\n"
              "    except Exception:\n        pass\n"
              "def bare():\n    try:\n        pass\n    except (ValueError, BaseException):\n"
              "        pass\n")
    walk = _Walk("x.py")
    walk.visit(ast.parse(source))
    assert [site[1] for site in walk.found] == ["bad", "bare"]


# --- the three sites the review demonstrated, by behaviour ----------------------------------

def _needs_too_much():
    raise MemoryError("over RLIMIT_DATA")
    yield b""                             # a generator, as the decoders are


def test_unpacking_lets_a_memory_error_through_instead_of_ending_the_candidate():
    with pytest.raises(MemoryError):
        list(unpack._produced(_needs_too_much, unpack.Budget()))


def test_a_damaged_candidate_still_just_ends():
    def damaged():
        yield b"first"
        raise ValueError("damaged")
    assert list(unpack._produced(damaged, unpack.Budget())) == [b"first"]


def test_an_encoded_word_reading_lets_a_memory_error_through(monkeypatch):
    def needs_too_much(value):
        raise MemoryError("over RLIMIT_DATA")
    monkeypatch.setattr(content_fields, "decode_words_as_shown", needs_too_much)
    with pytest.raises(MemoryError):
        content_fields.decode_word_readings("=?utf-8?q?a?=")
