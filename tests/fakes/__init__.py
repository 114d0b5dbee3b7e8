"""Protocol-level local servers for services that cannot run here (Slack, GitHub, Kubernetes, Jenkins)."""
