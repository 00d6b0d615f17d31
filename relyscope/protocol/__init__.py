"""The wire contract shared by the client and the server: proto <-> relyscope types, defaults.

Import-light on purpose: the client imports this package and never the server."""
