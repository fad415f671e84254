"""Model servers and their clients: what a model name means, starting and watching a server, talking to it."""
