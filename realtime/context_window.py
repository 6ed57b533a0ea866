"""The embedded llama.cpp server's context window, in tokens: what every prompt must fit.

A leaf module (no imports) so that the prompt builder (:mod:`realtime.conversation`) can size its history without
importing the engine.
"""

CONTEXT = 16384
"""Context tokens of the embedded llama.cpp server, shared by its slots."""
SLOTS = 4
"""Concurrent requests of the embedded llama.cpp server, each with its own prefix cache."""
SLOT_CONTEXT = CONTEXT // SLOTS
"""Most tokens one request's prompt and reply may hold (llama.cpp gives each slot ``n_ctx / n_parallel``; a longer
request fails: "request (4201 tokens) exceeds the available context size (4096 tokens)")."""
