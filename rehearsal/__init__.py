"""istio-upgrade-rehearsal: the library behind the rehearsal harness.

Plain Python with no pytest import, so every piece can be driven from a REPL or a script:
``kubesim`` is the simulated cluster, ``rehearsal.cluster`` the providers that hand out a cluster
(simulated, kind or an existing kubeconfig).
"""

__version__ = "0.1.0"
