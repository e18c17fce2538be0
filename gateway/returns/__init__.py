"""The customer side of returns: order import, the public form's policies, i18n, limits."""
