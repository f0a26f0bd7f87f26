"""End-to-end tests: the real CLI on local targets."""
