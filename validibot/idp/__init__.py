"""Identity-provider app: OIDC clients and their tokens, and the purge of stale DCR clients."""
