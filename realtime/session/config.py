"""A session's settings: one frozen value, replaced whole (``dataclasses.replace``) by whoever changes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from realtime.conversation import DEFAULT_INSTRUCTIONS, Message, Truncation
from realtime.policy import PolicyConfig
from realtime.reasoning import ReplyMode
from realtime.tools import NO_TOOLS, ToolUse


@dataclass(frozen=True)
class SessionConfig:
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Turn-taking: speech threshold, pause lengths (ms), barge-in (see :class:`~realtime.policy.PolicyConfig`)."""
    instructions: str = DEFAULT_INSTRUCTIONS
    reasoning_budget: int = 0
    """Tokens of ``<think>`` reasoning before the answer (0: answer at once)."""
    max_answer_tokens: int = 150
    temperature: float = 0.0
    output_rate: int = 24_000
    """Rate of the reply audio (Hz): the sink's rate, so audio is resampled once, from the synthesiser."""
    partial_interval_ms: int = 320
    """Speech between partial transcripts (each one also extends the decoder's prefilled prefix)."""
    prefix_padding_ms: int = 500
    """Audio before the detected onset that is kept for recognition (Silero confirms fricative onsets
    such as "St-" up to ~0.4 s late)."""
    max_utterance_s: float = 60.0
    """Longest user utterance kept (s); older audio is dropped from the front."""
    listen_while_thinking: bool = True
    """Partial transcripts and decoder prefill while the user speaks."""
    speculate: bool = True
    """Start the reply at the first pause that may end the turn, before the end is confirmed."""
    answer_early: bool = False
    """Start the reply on a partial transcript that reads as a complete utterance, while the user is still
    speaking; the final transcript at the first pause confirms it (or a reply to it replaces it)."""
    stream_speech: bool = True
    """Speak each answer clause as soon as it is written (off: synthesise the whole answer first)."""
    turn_detection: bool = True
    """Voice activity ends the user's turn; off, the client commits the input itself."""
    auto_respond: bool = True
    """Reply when voice activity ends the user's turn (off: only transcribe; the client asks for replies)."""
    interrupt_response: bool = True
    """Speech over a reply interrupts it (barge-in): first it pauses the reply, and interrupts only when it is real
    content (``policy.min_interruption_ms``, ``policy.min_interruption_words``, ``policy.backchannels``)."""
    idle_timeout_ms: int | None = None
    """Silence (ms of input audio) after a reply's audio ended that makes the agent prompt the user, once (OpenAI's
    ``server_vad`` ``idle_timeout_ms``, told with ``input_audio_buffer.timeout_triggered``). None: never."""
    idle_hangup_ms: int | None = None
    """Silence (ms) after that prompt (or, without one, after a reply) that ends the call. None: never."""
    reasoning_mode: ReplyMode = "budget"
    """For an audio LLM brain: plain decoding within the budget, or a Mind-Paced Speaking schedule."""
    audio_block_seconds: float = 2.0
    """For an audio LLM brain: audio is encoded and prefilled in blocks this long (s) while the user speaks."""
    tools: ToolUse = NO_TOOLS
    """The functions replies may call, and the choice among them (``session.tools`` / ``tool_choice``)."""
    audio_output: bool = True
    """Replies are spoken (``output_modalities: ["audio"]``); off, they are text only (``["text"]``)."""
    greeting: str | None = None
    """What the agent says as soon as the session starts, before the user speaks (:meth:`VoiceSession.greet`)."""
    greeting_interruptible: bool = True
    """False: speech over the greeting neither pauses nor stops it, and is answered after it."""
    truncation: Truncation = field(default_factory=Truncation)
    """How much of the history a cut keeps when it nears its limit (``session.truncation``)."""

    @classmethod
    def naive(cls, **overrides: object) -> SessionConfig:
        """The naive cascade: wait for the end of turn, transcribe, write the whole answer, then speak."""
        return cls(listen_while_thinking=False, speculate=False, answer_early=False, stream_speech=False, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ResponseOptions:
    """What one ``response.create`` asks beyond the session's settings (None: as the session is set)."""

    instructions: str | None = None
    tools: ToolUse | None = None
    max_answer_tokens: int | None = None
    audio_output: bool | None = None
    metadata: dict[str, str] | None = None
    """Echoed in the response (at most 16 pairs)."""
    out_of_band: bool = False
    """``conversation: "none"``: the reply enters no conversation and runs beside the default one."""
    input: tuple[str | Message, ...] | None = None
    """What the reply answers instead of the conversation: item ids (references to the conversation's items) and
    inline items."""
    interruptible: bool = True
    """False: speech over this reply neither pauses nor interrupts it, and a turn spoken over it is answered after it
    (a greeting, a notice that must be heard whole)."""
