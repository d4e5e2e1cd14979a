"""The accounts service: accounts, the roster, links, sign-in, set-password tokens and the audit trail."""
