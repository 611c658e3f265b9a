"""Methods: one module per family, each behind the adapter of vidbench.api."""
