"""The turn's state table, its tasks, its held output and its error, alone."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from realtime.errors import TurnStateError
from realtime.events import ErrorEvent, OutputItem
from realtime.latency import LatencyRecord
from realtime.session.turn import TRANSITIONS, Outcome, Phase, SpokenClause, Step, Turn

STEPS: list[Step] = ["commit", *Outcome]


def make(sent: list[OutputItem] | None = None) -> Turn:
    out = sent if sent is not None else []
    return Turn("turn_1", 1, LatencyRecord("turn_1"), out.append)


def to_phase(turn: Turn, phase: Phase) -> None:
    if phase is not Phase.SPECULATIVE:
        turn.commit()
    if phase is Phase.DONE:
        turn.end(Outcome.COMPLETED)


@pytest.mark.parametrize(("phase", "step"), list(itertools.product(Phase, STEPS)))
async def test_every_step_is_in_the_table_or_raises(phase: Phase, step: Step) -> None:
    turn = make()
    to_phase(turn, phase)
    allowed = TRANSITIONS.get((phase, step))
    act = turn.commit if step == "commit" else (lambda: turn.end(step))  # type: ignore[arg-type]
    if allowed is None:
        with pytest.raises(TurnStateError):
            act()
        assert turn.phase is phase
    else:
        act()
        assert turn.phase is allowed and turn.decided.is_set()
        assert turn.outcome is (None if step == "commit" else step)


async def test_output_is_held_while_speculative_and_dropped_once_done() -> None:
    sent: list[OutputItem] = []
    turn = make(sent)
    first, second, late = ErrorEvent("a", "a"), ErrorEvent("b", "b"), ErrorEvent("c", "c")
    turn.emit(second)
    turn.emit_first(first)
    assert sent == [] and turn.speculative
    turn.commit()
    turn.emit_first(late)
    assert sent == [first, second, late] and turn.committed
    turn.end(Outcome.COMPLETED)
    turn.emit(ErrorEvent("d", "d"))
    assert len(sent) == 3 and not turn.live and turn.finished.is_set()


async def test_stop_cancels_and_awaits_every_task_but_the_callers() -> None:
    turn = make()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def stopper() -> str:
        await turn.stop(Outcome.DISCARDED)
        return "stopped from inside"

    turn.spawn(work(), "work")
    await started.wait()
    inside = turn.spawn(stopper(), "stopper")
    assert await inside == "stopped from inside"
    assert cancelled.is_set() and turn.outcome is Outcome.DISCARDED and turn.finished.is_set()
    with pytest.raises(TurnStateError):
        await turn.stop(Outcome.INTERRUPTED)


async def test_a_failing_task_keeps_its_error_on_the_turn(caplog: pytest.LogCaptureFixture) -> None:
    turn = make()
    turn.commit()

    async def broken() -> None:
        raise RuntimeError("synthesiser broke")

    task = turn.spawn(broken(), "speak")
    with pytest.raises(RuntimeError):
        await task
    await asyncio.sleep(0)
    assert isinstance(turn.error, RuntimeError) and "turn turn_1 failed" in caplog.text
    turn.fail_with(ValueError("later"))
    assert isinstance(turn.error, RuntimeError), "the first failure wins"
    await turn.stop(Outcome.FAILED)
    assert turn.outcome is Outcome.FAILED


def test_heard_text_is_whole_clauses_then_the_played_share_of_the_next() -> None:
    turn = make()
    turn.spoken = [SpokenClause("one two", 100), SpokenClause("three four five six", 400)]
    assert turn.produced_samples == 500
    assert turn.heard_text(0) == ""
    assert turn.heard_text(100) == "one two"
    assert turn.heard_text(300) == "one two three four"
    assert turn.heard_text(10_000) == "one two three four five six"
