"""CLI layer: parse options, call the domain packages, print results. No domain logic here."""
