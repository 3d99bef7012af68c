"""Stores behind the handlers: one contract (base.Store), one SQLite and one DynamoDB implementation."""
