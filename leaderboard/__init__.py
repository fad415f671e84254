"""The leaderboard: leaderboard.json built from run directories (the truth), its views, and the regression check."""
