"""Deploy/k8s applied to a real Kubernetes API server and its controllers."""
