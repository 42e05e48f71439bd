"""Fleet's kernel: settings, database, accounts and unit scope, registry, audit log, CLI."""
