"""What leaves drip besides mail: the outbox, xAPI statements for a learning record store, and
signed webhooks."""
