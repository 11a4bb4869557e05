"""Local stand-ins for Telegram and the exchanges, shared by the tests and the sandbox."""
