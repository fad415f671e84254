"""The harness: serves models, runs lm-eval, drives training, judging and the leaderboard.

Its rooms, each importing only those below it (tests/test_harness_layout.py):
- `cli` (with `tables`): the `selflengthen` command;
- `run/`: the run graph: the experiment's stages planned, fingerprinted, executed and reported;
- `scoring/`: lm-eval over a served model, and the LLM judges over its answers;
- `synthesis/`: where synthesis sends its requests (in process, an endpoint, Ray);
- `serving/`: model names, starting and watching servers, their clients;
- `config`, `errors`: YAML into typed dataclasses, and the one-line user errors, shared by all.

`harness` imports the other packages; they never import it.
"""
