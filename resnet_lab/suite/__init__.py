"""The benchmark suite: presets, options, group names, what every benchmark does, the pytest plugin (no torch at package
import)."""
