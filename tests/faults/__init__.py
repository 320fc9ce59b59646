"""Fault injection: upstreams that break the module contract on purpose."""
