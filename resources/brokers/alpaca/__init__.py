"""Alpaca (alpaca-py ``TradingClient``): config, client wrapper, mapping, error classes."""

from resources.brokers.alpaca.client import LIVE_URL, PAPER_URL, AlpacaBroker
from resources.brokers.alpaca.resource import AlpacaBrokerResource

__all__ = ["LIVE_URL", "PAPER_URL", "AlpacaBroker", "AlpacaBrokerResource"]
