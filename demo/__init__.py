"""The end-to-end demo: bundled real prices, six reference strategies and the runner.

``marketdata`` reads the bundled S&P 500 closes (skfolio's sample, BSD-3, ``data/sp500``);
``strategies`` turns prices into intents and daily returns the way a user's bots would;
``runner`` drives every session through the allocator and the last one through Dagster.
``data/sample_returns.csv`` is the seeded synthetic history of the replay examples. It may
import ``allocator``, ``resources``, ``assets`` and ``pipelines`` (it is a user of them);
only ``cli`` imports it.
"""
