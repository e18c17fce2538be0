"""Device drivers: one interface module per device kind, one module per real backend."""
