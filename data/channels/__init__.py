"""Channels: I/O outward, as feeds are I/O inward (DESIGN.md §3). The incident store writes an
outbox; the sender (sender.py) turns it into deliveries (store.py) and sends them: webhooks and
SMS gateways (webhook.py), JT/T 808 messages to the truck's terminal (jt808_text.py).
docs/channels.md describes the whole."""

from data.channels.settings import ChannelError, ChannelSettings

__all__ = ["ChannelError", "ChannelSettings"]
