"""What an API key may do, normalised across venues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PermissionSummary:
    """One venue-independent view of a key's powers.

    ``withdraw_known`` is False where the venue cannot tell whether the key may withdraw; the
    user must then confirm explicitly that withdrawals are disabled before the key is stored.
    ``ip_restricted`` is None where the venue does not report it.
    """

    read: bool
    spot_trade: bool
    derivatives_trade: bool
    withdraw: bool
    transfer_out: bool = False
    ip_restricted: bool | None = None
    expires_at: datetime | None = None
    withdraw_known: bool = True

    @property
    def can_move_funds_out(self) -> bool:
        """Keys that can move money off the account are refused outright."""
        return self.withdraw or self.transfer_out

    @property
    def can_trade(self) -> bool:
        return self.spot_trade or self.derivatives_trade

    def to_flags(self) -> str:
        """Compact, stable text stored with the connection (no secrets in it)."""
        flags = [
            name
            for name, on in (
                ("read", self.read),
                ("spot", self.spot_trade),
                ("deriv", self.derivatives_trade),
                ("withdraw", self.withdraw),
                ("transfer", self.transfer_out),
            )
            if on
        ]
        if self.ip_restricted is not None:
            flags.append("ip" if self.ip_restricted else "noip")
        if not self.withdraw_known:
            flags.append("withdraw?")
        if self.expires_at is not None:
            flags.append("exp=" + self.expires_at.isoformat())
        return ",".join(flags)

    @classmethod
    def from_flags(cls, text: str) -> PermissionSummary:
        flags = {f for f in text.split(",") if f}
        expires = next((f[4:] for f in flags if f.startswith("exp=")), None)
        return cls(
            read="read" in flags,
            spot_trade="spot" in flags,
            derivatives_trade="deriv" in flags,
            withdraw="withdraw" in flags,
            transfer_out="transfer" in flags,
            ip_restricted=True if "ip" in flags else (False if "noip" in flags else None),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            withdraw_known="withdraw?" not in flags,
        )
