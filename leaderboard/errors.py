"""The one error the leaderboard raises for input a user can fix (the CLI prints it as one line)."""


class LeaderboardError(ValueError):
    """A run directory or leaderboard file is missing, malformed or inconsistent; the message says which."""
