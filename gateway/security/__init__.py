"""The gateway's trust boundaries.

Secrets and derived keys, who may call what, credential throttling, response headers and
log hygiene.
"""
