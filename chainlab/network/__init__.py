"""Network semantics shared by both drivers: graphs, the network config, and the one hop rule."""
