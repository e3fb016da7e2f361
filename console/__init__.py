"""The Mailmoat web console (SPEC §1, §7): a Flask app made by `create_app(home)`.

Import `create_app` from here; `console.serve` runs it on the HTTP and HTTPS ports and
`console.commands` registers `mailmoat console`. Nothing here imports `core`.
"""

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    from console.app import create_app as _create_app
    return _create_app(*args, **kwargs)
