"""Deprecated: the generated stubs moved to `relyscope.v1` (protoc's own module names).

`relyscope._proto.v1` re-exports them, so code not yet moved keeps working; import
`relyscope.v1` instead.
"""
