"""The command line\x27s subcommands, each imported only when called."""
