"""Helpers the tests share: free ports, databases on each backend, services started on loopback."""
