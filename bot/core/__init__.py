"""The lowest layer: posts, errors, durations, labels and the configuration. No project imports."""
