"""Conformance of the simulated API server with a real kube-apiserver (scenarios, recorder, comparison)."""
