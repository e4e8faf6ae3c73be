"""``source: traffic``: captured production traffic replayed against both stacks."""
