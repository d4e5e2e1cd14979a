"""The parents' web pages, served by the accounts process on PORTAL_WEB_PORT: set a password from an emailed link,
sign in, change a password, enrol two-factor, ask for a reset link. Server-rendered HTML, no JavaScript."""
