"""The run graph: the experiment's stages planned, fingerprinted, executed and reported from one description."""
