"""The console's analytics part."""
