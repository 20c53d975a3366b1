"""Data access: every boto3 call of the service lives in this package."""
