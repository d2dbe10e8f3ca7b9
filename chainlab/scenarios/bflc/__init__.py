"""BFLC's scenario: settings, spec, results summary and the Figure 3 capture tables."""
