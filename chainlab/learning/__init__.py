"""Machine learning for the testbed: datasets, partitions, model families, bagging, metrics, the worker."""
