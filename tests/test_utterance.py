"""The user's audio buffer: the padding before an onset is kept whole however late the onset is confirmed."""

from __future__ import annotations

import numpy as np

from realtime.session.utterance import UtteranceBuffer

CHUNK = 320  # 20 ms at 16 kHz


def test_an_onset_confirmed_late_still_gets_its_whole_padding() -> None:
    buffer = UtteranceBuffer(prefix_padding_ms=500, max_utterance_s=60.0)
    audio = np.arange(16_000 * 2, dtype=np.float32)  # each sample its own index
    for start in range(0, 16_000 + 6_400, CHUNK):  # 1.4 s heard; speech began at 1.0 s, confirmed 0.4 s later
        buffer.push(audio[start : start + CHUNK], start / 16_000)
    kept = buffer.begin(16_000)
    assert kept[0] == 16_000 - 8_000, "500 ms before the onset"
    assert kept[-1] == 16_000 + 6_400 - 1 and np.all(np.diff(kept) == 1), "everything since, in order"


def test_padding_is_what_was_heard_when_the_session_is_younger_than_it() -> None:
    buffer = UtteranceBuffer(prefix_padding_ms=500, max_utterance_s=60.0)
    buffer.push(np.ones(CHUNK * 5, np.float32), 0.0)
    assert len(buffer.begin(CHUNK * 2)) == CHUNK * 5
