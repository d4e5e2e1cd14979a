"""The notify service: the email outbox and its delivery, and task alerts to staff in Slack."""
