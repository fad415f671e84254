"""The harness: serves models, runs lm-eval, drives training, judging and the leaderboard.

`harness` imports the other packages; they never import it.
"""
