"""Sans-IO protocol cores: nodes that own their state and return effects."""
