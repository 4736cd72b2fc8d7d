"""Istio in the simulated cluster: manifests, the control plane and data plane programs, and the istioctl
emulator that speaks each version's output, messages and exit codes."""
