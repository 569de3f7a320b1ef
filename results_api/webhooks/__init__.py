"""Webhook delivery: signed callbacks by the Standard Webhooks spec, retried on a schedule."""
