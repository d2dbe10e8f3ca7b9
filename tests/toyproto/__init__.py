"""A toy proof-of-work chain that lives only in tests: proof that any protocol plugs into both drivers."""
