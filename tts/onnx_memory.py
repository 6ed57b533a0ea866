"""ONNX Runtime sessions that give their unused arena memory back after every run.

ONNX Runtime's CPU allocator is an arena that grows to fit each new input shape and never shrinks by itself. A VITS
voice sees a new shape with nearly every clause, so a voice shared by a server's sessions grows for hours:
synthesising 200 random sentences of 3-30 words with the Piper joe voice took a process from 320 to 449-557 MB
(two runs), still rising. With ONNX Runtime's arena shrinkage at the end of each run (the run option
``memory.enable_memory_arena_shrinkage``, onnxruntime's "memory arena shrinkage" in its performance-tuning
documentation) the same process stayed between 290 and 380 MB, and between 150 and 180 MB once glibc's free pages were
given back (:func:`realtime.heap.release`); the median synthesis time was not longer (302 against 330 ms). Turning
the arena off instead cost 5% more time and, untrimmed, grew faster (to 870 MB). Measured 2026-12-01 on two cores.
Not used for the streaming decoder (``tts.streaming_piper``), which runs its decoder once per chunk of a few frames:
there, shrinking after every run cost 7 ms of first audio and 9% of the total time (80 sentences: 112 against 105 ms,
422 against 385 ms) and the process held more before glibc's pages were given back (576 against 367 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnxruntime

SHRINK_CPU_ARENA = ("memory.enable_memory_arena_shrinkage", "cpu:0")
"""The run option (key, value) that frees the CPU arena's unused chunks at the end of a run."""


class ArenaShrinkingSession:
    """``session`` whose every :meth:`run` ends by shrinking its CPU arena; every other attribute is the session's.

    It stands in for an ``onnxruntime.InferenceSession`` where a library runs one it created (Piper's
    ``PiperVoice.session``)."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        import onnxruntime

        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry(*SHRINK_CPU_ARENA)

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        """``InferenceSession.run`` with the shrinking run option (the libraries that call it pass no options)."""
        return self._session.run(output_names, input_feed, self._options)

    def __getattr__(self, name: str) -> Any:
        if name == "_session":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self._session, name)
