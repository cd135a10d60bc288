"""The backlog of ideas and what finished experiments taught.

* :mod:`core.backlog.rice` - ideas scored by RICE, ranked, edited by id and version, checked for
  testability, promoted into the registry or archived.
* :mod:`core.backlog.knowledge` - the knowledge base of completed experiments: search, win rates
  and how well the RICE predictions held up.
"""
