"""`python -m offline_mbrl.cli` runs the `offline-mbrl` command."""

from offline_mbrl.cli.main import main

main()
