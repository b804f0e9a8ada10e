"""Unit tests of the member domain and use cases, with in-memory fakes of the ports."""
