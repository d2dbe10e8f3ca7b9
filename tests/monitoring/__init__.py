"""Tests of chainlab.monitoring and deploy/prometheus."""
