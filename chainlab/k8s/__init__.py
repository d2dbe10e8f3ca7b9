"""`chainlab k8s`: a Helm release of chainlab seen through the Kubernetes API (status, results)."""
