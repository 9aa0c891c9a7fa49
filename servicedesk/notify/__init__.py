"""Notifications: a transactional outbox and its delivery jobs.

A notification is a row (``notifications``) written in the same transaction as the
change that caused it, so it exists exactly when the change does; jobs deliver rows
through backends that plugins provide (``servicedesk_notifiers``), with retries.
"""
