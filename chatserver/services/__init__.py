"""Business logic: plain async functions that check, write, commit, then publish."""
