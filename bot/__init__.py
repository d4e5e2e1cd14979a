"""The Slack bot and the chat console: the one front-end staff touch."""
