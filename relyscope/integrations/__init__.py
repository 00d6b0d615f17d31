"""Hooks that connect other frameworks to a running relyscope service (client side only)."""
