"""Microservice chassis: the cross-cutting concerns every service shares, in one place."""
