"""Deployment: Seldon/Argo CD manifests, GitOps push, local MLServer serving and smoke tests.

- ``render``: champion description -> SeldonDeployment + Argo CD Application (deterministic YAML)
- ``gitops``: commit and push manifests to the GitOps repository (git CLI, never force-push)
- ``serve``: run the champion locally with MLServer in its own cached virtualenv
- ``smoke``: V2 inference requests built from the model's input example
"""
