"""lm-eval task folder: YAMLs, hooks (utils.py) and README."""
