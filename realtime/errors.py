"""The agent's error tree, under the root :class:`audio.errors.AgentError`.

::

    AgentError                      the root (audio.errors): the command line catches only this
    ├── UsageError                  a bad command-line argument or combination of arguments
    ├── InvalidStateError           a component used out of order (the caller's bug; audio.errors)
    │   ├── TurnStateError          an impossible turn transition (realtime.session.turn)
    │   ├── BrainStateError         a brain session used out of order (reply while one is in flight, ...)
    │   └── SessionClosedError      audio or a command for a closed session
    ├── AudioFileError              an unreadable audio file (audio.samples; also a ValueError)
    ├── AudioFormatError            an unknown or unsupported wire audio format (audio.codecs; also a ValueError)
    ├── ModelIntegrityError         a model file missing or with the wrong sha256 (realtime.assets; also a RuntimeError)
    │   └── CheckpointError         a Step-Audio checkpoint that cannot be loaded (realtime.step_audio.config)
    ├── ModelCacheError             the model cache cannot be written: disk full, a file size limit (realtime.assets; an OSError)
    ├── DecoderError                a language model failed to produce text (realtime.decoder; also a RuntimeError)
    │   └── ServerUnavailable       the model server is unreachable or stopped answering (realtime.chat_client)
    ├── CosyVoiceError              CosyVoice2 missing or failing (tts.cosyvoice; also a RuntimeError)
    │   ├── CosyVoiceNotInstalled   its package is not importable (also an ImportError)
    │   └── CosyVoiceFileError      no model directory or speaker prompt (also a FileNotFoundError)
    ├── DeviceError                 no usable microphone or speaker (realtime.mic; also a ValueError)
    ├── ControlError                a bad MQTT control message (realtime.mqtt; also a ValueError)
    ├── SignallingError             a bad WebRTC offer or signalling request (realtime.webrtc; also a ValueError)
    └── ProtocolError               a bad client event on the realtime protocol (realtime.protocol; also a ValueError)

Each class derives from the root where it is defined (``vad``, ``tts`` and ``audio`` import only the leaf
:mod:`audio.errors`, never this module); the builtin base kept beside the root (``ValueError``, ``RuntimeError``,
...) is for callers that caught it before the tree existed. A user's mistake and an internal bug never look alike:
anything that is not an :class:`AgentError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from audio.errors import AgentError, InvalidStateError

__all__ = ["AgentError", "BrainStateError", "InvalidStateError", "SessionClosedError", "TurnStateError", "UsageError"]


class UsageError(AgentError):
    """A bad command-line argument, or a combination the command cannot run with; the message says what to pass."""


class TurnStateError(InvalidStateError):
    """A turn was asked for a transition its state does not allow (see the table in :mod:`realtime.session.turn`)."""


class BrainStateError(InvalidStateError):
    """A brain session was used out of order: a reply while one is in flight, a finish with no reply, a closed one."""


class SessionClosedError(InvalidStateError):
    """Audio or a command arrived for a session that is closed."""
