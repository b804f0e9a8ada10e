"""Deployment tests: images, docker compose and Kubernetes manifests, all offline."""
