"""The console's handoff part."""
