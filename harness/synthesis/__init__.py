"""Where synthesis sends its requests: the in-process engine, an endpoint, or Ray Data actors and replicas."""
