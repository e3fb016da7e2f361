"""No handler in the work on a message swallows the MemoryError of the limit per message
(core/pipeline/run.py rule 5: a MemoryError anywhere in the work is one scan_error finding
of rule pipeline.memory_limit).

Regression, review18 R5a: MemoryError is an Exception, so `except Exception` handlers in
the decomposer and the scanners turned it into something else: the builtin engine quietly
stopped unpacking (core/scan/unpack.py `_produced`: content unscanned, no finding), a
heuristic was skipped, an encoded word became a "bad encoded word" defect.

The walk is this suite's rule for new code, as tests/console/test_access.py walks the URL
map: a handler that catches Exception or BaseException (or everything) in core/pipeline or
core/scan, or in a shared/ module they import (the checks call shared code: wildcards,
IDN, term sets), re-raises with no way out before it (no return, break or continue), or an
earlier handler of its `try` lets MemoryError through (`except MemoryError: raise`), or it
is listed in REVIEWED with the reason it may stay. A `contextlib.suppress` of Exception or
BaseException cannot let anything through, so it is always one to review.

Review2 T3: the walk saw neither shared/ nor `suppress(Exception)`, and took a handler
that returned before its final `raise` for one that re-raises.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.pipeline.decompose import content_fields
from core.scan import unpack

ROOT = Path(__file__).resolve().parents[3]
WALKED = ("core/pipeline", "core/scan")     # and the shared/ modules these import
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
    ("shared/definitions.py", "_read_members"):
        "reading a definitions package to install it (verify_package): liveupdate in the "
        "core, the CLI, the console; the workers read installed directories "
        "(in_force, baseline), never a package",
    ("core/pipeline/checks/antispam.py", "_traced"):
        "scoring a whitelisted message only for its trace: what becomes of the message does "
        "not hang on it, so a failure, the limit's included, loses the trace only (review21b "
        "R3); the engine's frames, and what they held, are gone at the handler",
    ("shared/retention.py", "local_storage_filter.keep"):
        "the event writer's filter, in the core and console processes: workers write no "
        "events, their findings go back to the core",
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


def _leaves(node: ast.AST) -> bool:
    """A return, break or continue in `node` (not in a function or class defined there)."""
    if isinstance(node, (ast.Return, ast.Break, ast.Continue)):
        return True
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
        return False
    return any(_leaves(child) for child in ast.iter_child_nodes(node))


def _reraises(handler: ast.ExceptHandler) -> bool:
    last = handler.body[-1]
    return (isinstance(last, ast.Raise) and last.exc is None
            and not any(_leaves(statement) for statement in handler.body))


def _suppressed(item: ast.withitem) -> set[str]:
    """The exception names a `with suppress(...)` item (contextlib's) swallows."""
    call = item.context_expr
    if not isinstance(call, ast.Call):
        return set()
    func = call.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return set().union(*(_names(arg) for arg in call.args)) if name == "suppress" else set()


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

    def visit_With(self, node):
        if any(_suppressed(item) & BROAD for item in node.items):
            self.found.append((self.path, ".".join(self.scope) or "<module>", node.lineno))
        self.generic_visit(node)

    visit_AsyncWith = visit_With


def _shared_imports(tree: ast.Module) -> set[Path]:
    """The files of the shared/ modules a module imports (anywhere in it: the checks
    import some inside functions)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    files = set()
    for name in names:
        if name.split(".")[0] == "shared":
            base = ROOT / name.replace(".", "/")
            files |= {file for file in (base.with_suffix(".py"), base / "__init__.py")
                      if file.is_file()}
    return files


def _walked() -> list[Path]:
    """core/pipeline, core/scan and, transitively, the shared/ modules they import."""
    files = {file for top in WALKED for file in (ROOT / top).rglob("*.py")}
    todo = sorted(files)
    while todo:
        for found in _shared_imports(ast.parse(todo.pop().read_text())) - files:
            files.add(found)
            todo.append(found)
    return sorted(files)


def _swallowing() -> list[tuple[str, str, int]]:
    found = []
    for file in _walked():
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


def test_the_walk_sees_a_suppress_and_a_way_out_before_the_raise():
    source = ("import contextlib\nfrom contextlib import suppress\n"
              "def quiet():\n    with contextlib.suppress(OSError, Exception):\n        pass\n"
              "async def quieter():\n    async with x, suppress(BaseException):\n        pass\n"
              "def narrow():\n    with suppress(OSError):\n        pass\n"
              "def early():\n    try:\n        pass\n    except Exception:\n"
              "        if x:\n            return None\n        raise\n"
              "def inner():\n    try:\n        pass\n    except Exception:\n"
              "        def later():\n            return 1\n        raise\n")
    walk = _Walk("x.py")
    walk.visit(ast.parse(source))
    assert [site[1] for site in walk.found] == ["quiet", "quieter", "early"]


def test_the_walk_reaches_the_shared_modules_the_checks_import():
    walked = {file.relative_to(ROOT).as_posix() for file in _walked()}
    # the wildcard, IDN and term-set code the checks call
    assert {"shared/wildcard.py", "shared/idn.py", "shared/term_set.py"} <= walked
    assert "core/smtp/session.py" not in walked and "console/app.py" not in walked


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
