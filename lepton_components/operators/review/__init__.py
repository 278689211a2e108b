"""The console's review part."""
