"""The ML operations protocol effects ask for, how long they take in simulated time, and who runs them."""
