"""Sans-IO domain logic: protocol and security decisions, pure functions, state machines."""
