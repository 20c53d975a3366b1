"""dunning_tools: what runs on a developer's or operator's machine, never in Lambda.

The `dunning` command (`cli`, `commands/`), the Docker-free local runner and demo (`local/`), the
policy simulator (`simulate/`), policy lint, operator reports and reads (`reports`, `case_report`,
`loan_timeline`, `hotline`, `backfill`, `dal/audit`). It imports the domain package `dunning` (the
Lambda layer, shared/); `dunning` never imports this package, and it is outside the layer's `ContentUri`.
"""
