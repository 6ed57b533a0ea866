"""The voice session as stages: listening, replying, speaking, behind a thin orchestrator.

- :mod:`~realtime.session.config`: the frozen :class:`SessionConfig` (all the wire protocol imports from here);
- :mod:`~realtime.session.utterance`: the user's audio (pre-roll, prefix padding, maximum length, sample times);
- :mod:`~realtime.session.turn`: one turn's phase and outcome, every transition in one table, its tasks and output;
- :mod:`~realtime.session.listening`: partial transcripts, stable-prefix prefill, early-answer verification;
- :mod:`~realtime.session.replying`: a turn from its audio to its words (transcript, brain, clauses);
- :mod:`~realtime.session.speaking` and :mod:`~realtime.session.crediting`: clauses to audio;
- :mod:`~realtime.session.output`: the bounded output queue, the audio sink contract and the one output router (which
  pauses and resumes a reply at the sink);
- :mod:`~realtime.session.overlaps`: speech over a reply, paused, then judged a backchannel (resume) or an interruption;
- :mod:`~realtime.session.idle`: silence after a reply (the idle prompt, the end of the call);
- :mod:`~realtime.session.orchestrator`: :class:`~realtime.session.orchestrator.VoiceSession`, which wires them.

Importing this package imports only the configuration (no model, VAD or network library).
"""

from realtime.session.config import SessionConfig

__all__ = ["SessionConfig"]
