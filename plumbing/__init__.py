"""Shared plumbing of the portal's processes: configuration, logging, database engines and migrations, the gRPC
server bootstrap and interceptors, clients, errors, and the outbox relay every service uses."""
