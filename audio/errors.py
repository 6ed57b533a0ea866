"""The root of the project's error tree.

Every error the agent raises on purpose derives from :class:`AgentError`: a user's mistake (a bad file, a bad
setting, a model file with the wrong hash), a model or server that fails, or a component used out of order. The
command line catches only this root, so anything else is an internal bug and shows its traceback. The root lives
in this leaf package so that ``vad``, ``tts`` and ``realtime`` can all derive from it without importing each
other; the agent's own subclasses are in :mod:`realtime.errors`.
"""


class AgentError(Exception):
    """Root of every error the voice agent raises on purpose."""


class InvalidStateError(AgentError):
    """A component was used out of order (for example a reply asked for while one is in flight). The caller's bug,
    never the user's: the message says which call was expected."""
