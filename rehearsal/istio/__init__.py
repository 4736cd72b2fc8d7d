"""Istio knowledge and tooling: the version catalog, install values, and the istioctl of each version."""
