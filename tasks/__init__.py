"""Length-following benchmarks as lm-eval tasks, and the pure scoring code they share with `selflengthen score`."""
