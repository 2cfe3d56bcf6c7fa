"""The ``qualify`` command: one module per command, imported when it is used.

    app.py      the group and ``qualify score``      batch.py    ``qualify batch``
    rules.py    ``qualify rules ...``                 analyze.py  ``qualify analyze``
    map.py      ``qualify map check``                 options.py  what they share

(``qualify serve`` and ``outbox`` are ``service/cli.py``.) Exit statuses: ``qualify/exits.py``.
"""

from qualify.cli.app import main

__all__ = ["main"]
