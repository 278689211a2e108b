"""The console's access part."""
