"""Entity extractors. Import the component modules directly: this package stays torch-free."""
