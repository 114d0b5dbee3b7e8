"""The Argo CD stand-in lives in tests/fakes/argocd_controller.py (its health rules in argocd_health.py).

This module only keeps ``from tests.fakes.argocd import ArgoCDStandIn`` working: it briefly held a
second, reconstructed controller (see the history of this file), now folded back into the one above.
"""

from tests.fakes.argocd_controller import ArgoCDStandIn

__all__ = ["ArgoCDStandIn"]
