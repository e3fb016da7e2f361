"""Guards every test gets.

Run as root (as .ci/run is), code that makes this process another user (shared.home.
become_owner, which the `mailmoat` program runs on a home the service user owns) would make
every later test run as that user, for good, far from the test that did it. Such a call fails
the test that makes it instead; a test runs the program as a subprocess to see that happen.
"""

import os

import pytest

# what changes a process's user or groups; become_owner calls initgroups first
_CHANGES_USER = ("initgroups", "setgroups", "setgid", "setegid", "setregid", "setresgid",
                 "setuid", "seteuid", "setreuid", "setresuid")


@pytest.fixture(autouse=True, scope="session")
def _this_process_keeps_its_user():
    def refuse(name):
        def call(*args):
            pytest.fail(f"os.{name}{args} in the test process: it would run every later test "
                        f"as another user; run the command as a subprocess "
                        f"(python -m shared.cli)")
        return call

    with pytest.MonkeyPatch.context() as patch:
        for name in _CHANGES_USER:
            if hasattr(os, name):
                patch.setattr(os, name, refuse(name))
        yield
