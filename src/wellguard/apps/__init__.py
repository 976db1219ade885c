"""Applications: the hub process, the REST API and the command line."""
