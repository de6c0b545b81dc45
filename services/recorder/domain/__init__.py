"""The recorder's domain: call legs, status ordering, destinations, tariffs and charges.

Pure Python: no I/O, no database, no clock. Everything here is unit-tested directly.
"""
