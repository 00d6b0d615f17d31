"""The `relyscope` command line."""

from relyscope.cli.main import (
    add_audit_options,
    audit_config_from,
    build_parser,
    example_case_path,
    main,
)

__all__ = ["add_audit_options", "audit_config_from", "build_parser", "example_case_path", "main"]
