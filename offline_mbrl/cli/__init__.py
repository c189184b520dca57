"""The `offline-mbrl` command, one module per group of subcommands."""
