"""Adapters to the outside: SQL, files, sockets."""
