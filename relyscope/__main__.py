import sys

from relyscope.cli import main

sys.exit(main())
