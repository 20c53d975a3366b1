"""Operator reads (scans, stack lookups): boto3 calls that only tooling makes, never a Lambda path."""
