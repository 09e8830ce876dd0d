"""Distributed runtime pieces backed by Redis: the shared rate limiter, locks and leadership.

Everything here is optional at run time: embedded mode (no broker) never imports it.
"""
