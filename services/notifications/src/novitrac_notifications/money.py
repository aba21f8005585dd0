"""Money for people to read: integer amounts in a currency's minor unit, formatted for display."""

from __future__ import annotations

# ISO 4217 minor units where they are not 2 (USD 1234 is $12.34, JPY 1234 is ¥1,234).
_ZERO_DECIMAL = (
    *("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"),
    *("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"),
)
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_ZERO_DECIMAL, 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
_SYMBOLS: dict[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CAD": "CA$",
    "AUD": "A$",
    "INR": "₹",
}


def minor_unit_digits(currency: str) -> int:
    """How many decimal digits the currency's minor unit has (2 unless ISO 4217 says otherwise)."""
    return _EXPONENTS.get(currency.upper(), 2)


def format_money(amount: int, currency: str) -> str:
    """``amount`` minor units of ``currency`` as text: ``$12.34``, ``¥1,234``, ``-€0.05``,
    ``CHF 1,000.00`` (the code in front when the currency has no symbol here)."""
    code = currency.upper()
    digits = minor_unit_digits(code)
    whole, fraction = divmod(abs(amount), 10**digits)
    number = f"{whole:,}.{fraction:0{digits}d}" if digits else f"{whole:,}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{code} {number}"
