"""Routing and delivery: who is owed each accepted message (recipients.py), where each
recipient's copy goes (routes.py, adapter/mappings/routing.yaml), the outbox rows (outbox.py) and the
worker that delivers them (worker.py, delivery.py)."""
