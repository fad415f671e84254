"""Shared infrastructure below the method, the judges, the tasks and the leaderboard.

Crash-safe files (`journal`), the text-backend protocol and sampling settings (`backend`,
`sampling`), the request ledger and cap (`recorded_model`, `limiter`), per-item randomness
(`rng`), CPU threads and precision (`compute`), and the in-process continuous-batching engine
(`inprocess`). It imports nothing else of this project.
"""
