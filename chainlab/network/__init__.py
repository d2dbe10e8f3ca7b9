"""One network for both drivers: the graphs, the network config and the per-hop rule that sim and live share."""
