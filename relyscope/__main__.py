"""`python -m relyscope` is the `relyscope` command."""

import sys

from relyscope.cli import main

sys.exit(main())
