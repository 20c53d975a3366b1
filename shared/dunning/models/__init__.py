"""Models of the collection domain: loans, policy, send jobs, delivery records, events."""
