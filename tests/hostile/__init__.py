"""Hand-assembled hostile (and a few benign) model files for the reader's security tests."""
