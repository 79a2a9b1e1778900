"""The quantum co-processor: circuit templates, timing model, execution backends, service."""
