"""LearningChain (seed 003) as an experiment: settings, the spec, the summary and the aggregation benchmark."""
