"""The portal's gRPC services. Each owns its tables and is reached only through its API."""
