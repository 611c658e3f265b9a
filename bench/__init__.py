"""vidbench: a benchmark and reproducibility harness for efficient video inference."""
