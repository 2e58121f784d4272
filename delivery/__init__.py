"""Outbound edges: roles of ``serve`` that deliver what the core wrote to its outboxes."""
