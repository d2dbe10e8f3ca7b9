"""The simulation driver: discrete-event engine, network models, experiments and reports."""
