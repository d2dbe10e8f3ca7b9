"""The live drivers: the protocol nodes in real time."""
