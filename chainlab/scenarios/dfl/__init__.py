"""DFL's scenario: config settings, the ProtocolSpec and the results summary."""
