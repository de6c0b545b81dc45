"""Use cases: what the commands do, on top of the domain and the adapters."""
