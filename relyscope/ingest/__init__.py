"""Log readers that turn logged conversations into Cases."""
