"""The broker registry: what the pipeline trades and what the operator commands talk to.

The operator lane's adapters are exercised end to end against the fakes by
``tests/cli/test_broker.py``; here, what the registry itself decides: the simulated venue for
every venue in the pipeline by default, the real adapter in ``paper``/``live`` mode for the
pipeline and the operator alike, and, for the operator lane, the mode variables, the credentials
and the settings each venue is built from, each error naming its variable.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from allocator.config import AllocatorConfig, RoutingConfig
from allocator.errors import ConfigError
from allocator.execution import DEFAULT_INSTRUMENTS
from allocator.execution.orders import OrderRequest, Side, Venue
from allocator.settings import Settings
from resources.brokers.paper.client import PaperBroker, PaperBrokerConfig
from resources.brokers.registry import MODE_VARIABLES, operator_venue, pipeline_venues, venue_mode


def _request(cid: str) -> OrderRequest:
    inst = DEFAULT_INSTRUMENTS["SPY"]
    return OrderRequest(
        client_order_id=cid,
        symbol="SPY",
        asset_class=inst.asset_class,
        side=Side.BUY,
        qty=Decimal(3),
        venue=Venue.ALPACA,
        reference_price=Decimal(500),
    )


def test_the_pipeline_trades_the_simulated_venue_everywhere_by_default() -> None:
    paper = PaperBrokerConfig(slippage_bps=Decimal(10))
    venues = pipeline_venues(DEFAULT_INSTRUMENTS, paper=paper, env={})
    assert set(venues) == set(Venue)
    for venue, broker in venues.items():
        assert isinstance(broker, PaperBroker)
        assert (broker.venue, broker.name, broker.config) == (venue, f"paper-{venue}", paper)
        assert broker.mode == "sim"


def test_the_pipeline_and_the_operator_build_each_venue_from_the_same_mode(
    ledger: object,
) -> None:
    from resources.brokers.alpaca import AlpacaBroker
    from tests.fakes.fake_alpaca import FakeAlpaca

    fake = FakeAlpaca().start()
    try:
        env = {
            "ALPACA_MODE": "paper",
            "ALPACA_API_KEY": fake.key,
            "ALPACA_SECRET_KEY": fake.secret,
            "ALPACA_BASE_URL": fake.url,
        }
        venues = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger, env=env)
        alpaca = venues[Venue.ALPACA]
        assert isinstance(alpaca, AlpacaBroker)
        assert alpaca.mode == "paper"
        assert isinstance(venues[Venue.CCXT], PaperBroker)  # CCXT_MODE unset: sim
        operator = operator_venue("alpaca", Settings(), env=env)
        assert isinstance(operator, AlpacaBroker)
        assert operator.base_url == alpaca.base_url == fake.url
        alpaca.submit(_request("p1"))
        assert operator.positions() == {"SPY": Decimal(3)}
        # sim: the operator's simulated venue is the pipeline's, the same orders in the ledger
        sim = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger, env={})[Venue.ALPACA]
        sim.submit(_request("s1"))
        seen = operator_venue("alpaca", Settings(), env={}, ledger=ledger)
        assert isinstance(seen, PaperBroker)
        assert seen.mode == "sim"
        assert seen.positions() == {"SPY": Decimal(3)}
        for broker in (alpaca, operator):
            broker.close()
    finally:
        fake.stop()


def test_the_pipeline_venues_keep_their_orders_in_the_ledger(ledger: object) -> None:
    pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger, env={})[Venue.ALPACA].submit(_request("r1"))
    again = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger, env={})[Venue.ALPACA]
    assert again.positions() == {"SPY": Decimal(3)}  # a re-executed run finds the order
    # Without a ledger, each call starts empty (the offline ``allocator net``).
    memory = pipeline_venues(DEFAULT_INSTRUMENTS)[Venue.ALPACA]
    memory.submit(_request("r2"))
    assert pipeline_venues(DEFAULT_INSTRUMENTS)[Venue.ALPACA].positions() == {}


def test_each_venue_has_its_mode_variable_and_sim_is_the_default() -> None:
    assert MODE_VARIABLES == {
        Venue.ALPACA: "ALPACA_MODE",
        Venue.CCXT: "CCXT_MODE",
        Venue.IBKR: "IB_MODE",
    }
    for venue, variable in MODE_VARIABLES.items():
        assert venue_mode(venue, {}) == "sim"
        assert venue_mode(venue, {variable: ""}) == "sim"
        assert venue_mode(venue, {variable: "paper"}) == "paper"
        assert venue_mode(venue, {variable: "live"}) == "live"
        with pytest.raises(ConfigError, match=f"^{variable}: must be 'sim', 'paper' or 'live'"):
            venue_mode(venue, {variable: "real"})


def test_a_bad_mode_is_refused_before_any_credential_is_read() -> None:
    with pytest.raises(
        ConfigError, match=r"^ALPACA_MODE: must be 'sim', 'paper' or 'live', got 'prod'"
    ):
        operator_venue("alpaca", Settings(), env={"ALPACA_MODE": "prod"})


@pytest.mark.parametrize(
    ("venue", "env", "variable"),
    [
        ("alpaca", {"ALPACA_MODE": "paper"}, "ALPACA_API_KEY"),
        ("alpaca", {"ALPACA_MODE": "paper", "ALPACA_API_KEY": "k"}, "ALPACA_SECRET_KEY"),
        ("ccxt", {"CCXT_MODE": "paper"}, "CCXT_API_KEY"),
        ("ccxt", {"CCXT_MODE": "live", "CCXT_API_KEY": "k"}, "CCXT_SECRET"),
    ],
)
def test_a_missing_credential_names_its_variable(
    venue: str, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: environment variable is not set"):
        operator_venue(venue, Settings(), env=env)


def test_live_needs_the_venues_live_url() -> None:
    env = {
        "ALPACA_API_KEY": "k",
        "ALPACA_SECRET_KEY": "s",
        "ALPACA_BASE_URL": "http://127.0.0.1:9",
        "ALPACA_MODE": "live",
    }
    with pytest.raises(ConfigError, match=r"'live' needs the venue's live endpoint"):
        operator_venue("alpaca", Settings(), env=env)


def test_ccxt_exchange_defaults_to_the_routing_configuration() -> None:
    env = {
        "CCXT_MODE": "paper",
        "CCXT_API_KEY": "k",
        "CCXT_SECRET": "s",
        "CCXT_BASE_URL": "http://127.0.0.1:9",
    }
    settings = Settings(config=AllocatorConfig(routing=RoutingConfig(crypto_exchange="bybit")))
    broker = operator_venue("ccxt", settings, env=env)
    try:
        assert broker.exchange_id == "bybit"  # type: ignore[attr-defined]
    finally:
        broker.close()  # type: ignore[attr-defined]
    chosen = operator_venue("ccxt", settings, env={**env, "CCXT_EXCHANGE": "binance"})
    try:
        assert chosen.exchange_id == "binance"  # type: ignore[attr-defined]
    finally:
        chosen.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("IB_PORT", "tws", "must be a whole number, got 'tws'"),
        ("IB_PORT", "70000", r"must lie in \[1, 65535\], got 70000"),
        ("IB_CLIENT_ID", "-1", r"must lie in \[0, 2147483647\], got -1"),
    ],
)
def test_ib_connection_numbers_are_checked(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: {message}"):
        operator_venue("ibkr", Settings(), env={"IB_MODE": "paper", variable: value})
