"""The paper broker's fee schedule per venue (BROKERS.md "The paper broker", SPEC §7 fees).

:class:`PaperFees` prices one market order the way each venue would: Alpaca $0 for equities
and ETFs, Interactive Brokers per share, per contract or in basis points of forex notional
(each with its minimum), crypto taker basis points. Why a module of its own: the fee model is
used without a broker too, as ``fee_model`` of :func:`allocator.execution.bar.settle_bar` (the
netting savings: what the accepted intents would have paid as separate orders), and it is the
one part of the simulated venue an operator tunes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from allocator.execution.instruments import Instrument
from allocator.execution.orders import AssetClass, Venue

__all__ = ["PaperFees"]

_BPS = Decimal(10_000)
_FEE_QUANTUM = Decimal("0.00000001")


def _dec(value: str) -> Decimal:
    return Decimal(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class PaperFees:
    """Fee schedules per venue, in the quote currency.

    Alpaca: $0 for equities and ETFs, ``alpaca_per_option_contract`` for options.
    Interactive Brokers: ``ibkr_per_share`` (stocks, minimum ``ibkr_min_per_order``),
    ``ibkr_per_contract`` (futures), ``ibkr_forex_bps`` of notional (minimum
    ``ibkr_forex_min``). Crypto: taker/maker in basis points of notional (market orders take).
    Every fee is rounded half-up to 0.00000001.
    """

    alpaca_per_option_contract: Decimal = field(default_factory=lambda: _dec("0"))
    ibkr_per_share: Decimal = field(default_factory=lambda: _dec("0.005"))
    ibkr_min_per_order: Decimal = field(default_factory=lambda: _dec("1.00"))
    ibkr_per_contract: Decimal = field(default_factory=lambda: _dec("0.85"))
    ibkr_forex_bps: Decimal = field(default_factory=lambda: _dec("0.2"))
    ibkr_forex_min: Decimal = field(default_factory=lambda: _dec("2.00"))
    crypto_taker_bps: Decimal = field(default_factory=lambda: _dec("10"))
    crypto_maker_bps: Decimal = field(default_factory=lambda: _dec("2"))

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"paper fees: {name} must be a decimal >= 0, got {value!r}")

    def fee(self, instrument: Instrument, venue: Venue, qty: Decimal, price: Decimal) -> Decimal:
        """The fee of one market order of ``qty`` (> 0) at ``price``."""
        notional = qty * price * instrument.multiplier
        raw: Decimal
        if venue is Venue.ALPACA:
            raw = (
                qty * self.alpaca_per_option_contract
                if instrument.asset_class is AssetClass.OPTION
                else Decimal(0)
            )
        elif venue is Venue.IBKR:
            if instrument.asset_class is AssetClass.FUTURE:
                raw = qty * self.ibkr_per_contract
            elif instrument.asset_class is AssetClass.FOREX:
                raw = max(notional * self.ibkr_forex_bps / _BPS, self.ibkr_forex_min)
            else:
                raw = max(qty * self.ibkr_per_share, self.ibkr_min_per_order)
        else:
            raw = notional * self.crypto_taker_bps / _BPS
        return raw.quantize(_FEE_QUANTUM, rounding=ROUND_HALF_UP)
