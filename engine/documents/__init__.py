"""Reading files: line-aware YAML, JSON Schema checks with line numbers, strict JSON."""
