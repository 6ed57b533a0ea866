"""Text normalisation before synthesis: what espeak-ng (Piper's phonemiser) reads wrongly, written out as words.

espeak-ng already reads plain numbers ("24", "1,000,000"), "%", "+", "=", "e.g." and most abbreviations well. Checked
with ``espeak-ng -x`` (the phonemes Piper speaks), it reads these wrongly, and this module rewrites them:

- money: "$5.99" -> "dollar five point nine nine"; written "five dollars and ninety-nine cents";
- units after a number: "3 km/h" -> "k m slash h", "5 kg" -> "k g", "100°C" -> "degrees c"; written as unit words;
- years: "in 1999" -> "nineteen hundred and ninety-nine"; written "nineteen ninety-nine";
- title abbreviations: "Dr. Smith" ends a sentence after "Dr."; written "Doctor Smith".

Numbers are spelled by ``num2words`` (a maintained library), not by hand.
"""

from __future__ import annotations

import re

from num2words import num2words

_CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP"}
_MONEY = re.compile(r"([$€£])\s?(\d+(?:,\d{3})*(?:\.\d{1,2})?)(?!\d)")
_UNITS = {
    "km/h": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "km": ("kilometre", "kilometres"),
    "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "ml": ("millilitre", "millilitres"),
    "m": ("metre", "metres"),
    "g": ("gram", "grams"),
    "l": ("litre", "litres"),
    "ft": ("foot", "feet"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
}
# longest unit first ("km/h" before "km", "°C" before "°"); a unit ends at a non-letter
_UNIT = re.compile(
    r"(\d+(?:\.\d+)?)\s?(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![A-Za-z])"
)
_YEAR = re.compile(r"\b(in|since|until|by|from|of|year|around)\s+(1[1-9]\d\d|20\d\d)\b(?!\s?[%$€£.,]\d)", re.I)
_TITLES = {"Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Prof.": "Professor"}
_TITLE = re.compile(r"\b(" + "|".join(re.escape(t) for t in _TITLES) + r")(?=\s+[A-Z])")


def spoken_form(text: str) -> str:
    """``text`` with money, units after numbers, years and title abbreviations written out as words (the rest is
    left to espeak-ng, which reads it well); idempotent."""
    text = _MONEY.sub(_money, text)
    text = _UNIT.sub(_unit, text)
    text = _YEAR.sub(lambda m: f"{m.group(1)} {num2words(int(m.group(2)), to='year')}", text)
    return _TITLE.sub(lambda m: _TITLES[m.group(1)], text)


def _money(match: re.Match[str]) -> str:
    amount = float(match.group(2).replace(",", ""))
    words: str = num2words(amount, to="currency", currency=_CURRENCIES[match.group(1)], separator=" and", cents=True)
    return words.replace(", ", " ").replace(" and zero cents", "")


def _unit(match: re.Match[str]) -> str:
    number, unit = match.group(1), match.group(2)
    singular, plural = _UNITS[unit]
    return f"{number} {singular if number == '1' else plural}"
