"""dunning: SMS collection reminders for overdue loans (the Lambda layer's domain package)."""

__version__ = "0.1.0"
