"""How a config becomes data, nodes, a network plan and results: the generic config, the spec interface and
registry, and one package per protocol (reached only through the registry)."""
