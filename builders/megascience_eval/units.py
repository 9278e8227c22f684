"""Physical units for "EM (unit)" answers (SciBench, OlympicArena): parse, convert, compare. Pure functions.

A unit is a scale factor to SI and a dimension vector over (m, kg, s, A, K, mol, cd):

    parse_unit("kJ/mol")            -> Unit(1000.0, (2, 1, -2, 0, 0, -1, 0))
    parse_unit("\\mathrm{m} \\cdot \\mathrm{s}^{-1}") -> Unit(1.0, (1, 0, -1, 0, 0, 0, 0))
    split_quantity("4.2 \\times 10^{3} J") -> ("4.2 \\times 10^{3}", "J")
    convert(1.0, parse_unit("kJ"), parse_unit("J")) -> 1000.0

A leading power of ten is part of the unit ("10^{-3} m" is a millimetre, as SciBench writes its units).
Words the table does not know make the unit unknown (None): an answer is then compared by its number
only where the metric allows it. Temperatures in °C/°F convert only when they stand alone.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

DIMS = ("m", "kg", "s", "A", "K", "mol", "cd")


@dataclass(frozen=True)
class Unit:
    scale: float
    dims: tuple[int, ...]
    offset: float = 0.0        # °C, °F: SI value = value * scale + offset (only for a lone temperature)

    def compatible(self, other: "Unit") -> bool:
        return self.dims == other.dims


def _d(**exp: int) -> tuple[int, ...]:
    return tuple(exp.get(k, 0) for k in DIMS)


DIMENSIONLESS = Unit(1.0, _d())
_E = 1.602176634e-19
_BASE: dict[str, Unit] = {
    "m": Unit(1.0, _d(m=1)), "g": Unit(1e-3, _d(kg=1)), "s": Unit(1.0, _d(s=1)), "A": Unit(1.0, _d(A=1)),
    "K": Unit(1.0, _d(K=1)), "mol": Unit(1.0, _d(mol=1)), "cd": Unit(1.0, _d(cd=1)),
    "N": Unit(1.0, _d(kg=1, m=1, s=-2)), "J": Unit(1.0, _d(kg=1, m=2, s=-2)), "W": Unit(1.0, _d(kg=1, m=2, s=-3)),
    "Pa": Unit(1.0, _d(kg=1, m=-1, s=-2)), "C": Unit(1.0, _d(A=1, s=1)), "V": Unit(1.0, _d(kg=1, m=2, s=-3, A=-1)),
    "Ω": Unit(1.0, _d(kg=1, m=2, s=-3, A=-2)), "ohm": Unit(1.0, _d(kg=1, m=2, s=-3, A=-2)),
    "F": Unit(1.0, _d(kg=-1, m=-2, s=4, A=2)), "T": Unit(1.0, _d(kg=1, s=-2, A=-1)),
    "Wb": Unit(1.0, _d(kg=1, m=2, s=-2, A=-1)), "H": Unit(1.0, _d(kg=1, m=2, s=-2, A=-2)),
    "Hz": Unit(1.0, _d(s=-1)), "L": Unit(1e-3, _d(m=3)), "l": Unit(1e-3, _d(m=3)), "M": Unit(1e3, _d(mol=1, m=-3)),
    "eV": Unit(_E, _d(kg=1, m=2, s=-2)), "Da": Unit(1.66053906660e-27, _d(kg=1)), "u": Unit(1.66053906660e-27, _d(kg=1)),
    "Bq": Unit(1.0, _d(s=-1)), "Gy": Unit(1.0, _d(m=2, s=-2)), "Sv": Unit(1.0, _d(m=2, s=-2)),
    "S": Unit(1.0, _d(kg=-1, m=-2, s=3, A=2)),
}
# units that take no SI prefix (so "min" is minutes, not milli-inch)
_FIXED: dict[str, Unit] = {
    "min": Unit(60.0, _d(s=1)), "h": Unit(3600.0, _d(s=1)), "hr": Unit(3600.0, _d(s=1)), "d": Unit(86400.0, _d(s=1)),
    "day": Unit(86400.0, _d(s=1)), "yr": Unit(3.15576e7, _d(s=1)), "year": Unit(3.15576e7, _d(s=1)),
    "atm": Unit(101325.0, _d(kg=1, m=-1, s=-2)), "bar": Unit(1e5, _d(kg=1, m=-1, s=-2)),
    "Torr": Unit(101325.0 / 760, _d(kg=1, m=-1, s=-2)), "torr": Unit(101325.0 / 760, _d(kg=1, m=-1, s=-2)),
    "mmHg": Unit(133.322387415, _d(kg=1, m=-1, s=-2)), "psi": Unit(6894.757293168, _d(kg=1, m=-1, s=-2)),
    "cal": Unit(4.184, _d(kg=1, m=2, s=-2)), "kcal": Unit(4184.0, _d(kg=1, m=2, s=-2)),
    "Å": Unit(1e-10, _d(m=1)), "angstrom": Unit(1e-10, _d(m=1)), "AA": Unit(1e-10, _d(m=1)),
    "in": Unit(0.0254, _d(m=1)), "ft": Unit(0.3048, _d(m=1)), "mi": Unit(1609.344, _d(m=1)),
    "lb": Unit(0.45359237, _d(kg=1)), "G": Unit(1e-4, _d(kg=1, s=-2, A=-1)),
    "erg": Unit(1e-7, _d(kg=1, m=2, s=-2)), "dyn": Unit(1e-5, _d(kg=1, m=1, s=-2)),
    "rad": DIMENSIONLESS, "sr": DIMENSIONLESS, "%": Unit(0.01, _d()),
    "deg": Unit(math.pi / 180, _d()), "°": Unit(math.pi / 180, _d()),
    "c": Unit(299792458.0, _d(m=1, s=-1)),       # "MeV/c^2" style
    "amu": Unit(1.66053906660e-27, _d(kg=1)), "ly": Unit(9.4607304725808e15, _d(m=1)),
    "pc": Unit(3.0856775814913673e16, _d(m=1)), "AU": Unit(1.495978707e11, _d(m=1)),
}
_TEMPERATURE = {"°C": Unit(1.0, _d(K=1), 273.15), "℃": Unit(1.0, _d(K=1), 273.15),
                "°F": Unit(5 / 9, _d(K=1), 273.15 - 32 * 5 / 9)}
_PREFIXES = {"Y": 1e24, "Z": 1e21, "E": 1e18, "P": 1e15, "T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3, "h": 1e2,
             "da": 1e1, "d": 1e-1, "c": 1e-2, "m": 1e-3, "μ": 1e-6, "µ": 1e-6, "u": 1e-6, "n": 1e-9, "p": 1e-12,
             "f": 1e-15, "a": 1e-18}
_WORDS = {"meters": "m", "meter": "m", "metres": "m", "seconds": "s", "second": "s", "sec": "s", "grams": "g",
          "gram": "g", "joules": "J", "joule": "J", "newtons": "N", "newton": "N", "watts": "W", "volts": "V",
          "kelvin": "K", "moles": "mol", "mole": "mol", "liters": "L", "litres": "L", "liter": "L", "hours": "h",
          "hour": "h", "minutes": "min", "minute": "min", "days": "day", "years": "year", "degrees": "deg",
          "degree": "deg", "ohms": "ohm", "amperes": "A", "ampere": "A", "amps": "A", "coulombs": "C",
          "pascals": "Pa", "hertz": "Hz", "electronvolts": "eV", "percent": "%"}

_LATEX_UNIT = re.compile(r"\\(?:mathrm|text|mathit|rm|operatorname|unit|si)\s*\{([^{}]*)\}")
_TEN_POWER = re.compile(r"^\s*(?:×\s*)?10\s*\^\s*\(?\s*([-+−]?\s*\d+)\s*\)?\s*")
_TOKEN = re.compile(r"([A-Za-zΩμµÅ°℃%]+)\s*(?:\^\s*\{?\s*([-+−]?\s*\d+(?:\.\d+)?)\s*\}?|([-−]?\d))?")


def _clean_unit_text(text: str) -> str:
    s = text.strip().strip("$").strip()
    for _ in range(3):
        s = _LATEX_UNIT.sub(r" \1 ", s)
    s = s.replace("\\cdot", " ").replace("\\times", " ").replace("·", " ").replace("*", " ").replace("⋅", " ")
    s = s.replace("\\,", " ").replace("~", " ").replace("\\ ", " ").replace("\\;", " ")
    s = s.replace("\\Omega", "Ω").replace("\\mu", "μ").replace("\\AA", "Å").replace("\\%", "%")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?\s*C", "°C", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "°", s)
    s = s.replace("\\degree", "°").replace("{", "").replace("}", "")
    return " ".join(s.split())


def _atom(symbol: str) -> Unit | None:
    if len(symbol) > 2 and symbol.lower() in _WORDS:
        symbol = _WORDS[symbol.lower()]
    if symbol in _FIXED:
        return _FIXED[symbol]
    if symbol in _BASE:
        return _BASE[symbol]
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        rest = symbol[len(prefix):]
        if symbol.startswith(prefix) and rest in _BASE:
            base = _BASE[rest]
            return Unit(base.scale * _PREFIXES[prefix], base.dims)
    return None


def parse_unit(text: object) -> Unit | None:
    """The unit written in `text` (plain, LaTeX or words; products, `/`, powers, `^{-1}`), or None."""
    if not isinstance(text, str):
        return None
    s = _clean_unit_text(text)
    if not s:
        return DIMENSIONLESS
    if s in _TEMPERATURE:
        return _TEMPERATURE[s]
    scale, dims = 1.0, [0] * len(DIMS)
    factor = _TEN_POWER.match(s)                    # SciBench writes scaled units: "10^{-19} J", "×10^5 Pa"
    if factor:
        scale = 10.0 ** int(factor.group(1).replace("−", "-").replace(" ", ""))
        s = s[factor.end():]
    sign, pos = 1, 0
    while pos < len(s):
        if s[pos] == " ":
            pos += 1
            continue
        if s[pos] == "/":
            sign, pos = -1, pos + 1
            continue
        if s[pos] in "()":
            pos += 1
            continue
        m = _TOKEN.match(s, pos)
        if not m:
            return None
        unit = _atom(m.group(1))
        if unit is None or unit.offset:
            return None
        power = m.group(2) or m.group(3) or "1"
        exp = float(power.replace("−", "-").replace(" ", "")) * sign
        if exp != int(exp):
            return None
        scale *= unit.scale ** exp
        dims = [a + int(exp) * b for a, b in zip(dims, unit.dims)]
        pos = m.end()
    return Unit(scale, tuple(dims))


def convert(value: float, source: Unit, target: Unit) -> float | None:
    """`value` in `source` expressed in `target`; None when the dimensions differ."""
    if not source.compatible(target):
        return None
    si = value * source.scale + source.offset
    return (si - target.offset) / target.scale


_QUANTITY = re.compile(
    r"^\s*(?P<num>[-+−]?(?:\d[\d,]*\.?\d*|\.\d+)(?:\s*(?:[eE][-+−]?\d+|(?:\\times|×|\*|\\cdot|x)\s*10\s*\^\s*\{?\s*[-+−]?\s*\d+\s*\}?))?)"
    r"\s*(?P<unit>.*?)\s*$", re.S)


def split_quantity(text: object) -> tuple[str, str] | None:
    """(number text, unit text) for an answer like "4.2 × 10^3 kJ mol^-1"; None when it starts with no number."""
    if not isinstance(text, str):
        return None
    s = text.strip().strip("$").strip()
    s = re.sub(r"^\\(?:boxed|fbox)\s*\{(.*)\}\s*$", r"\1", s, flags=re.S).strip().strip("$").strip()
    m = _QUANTITY.match(s)
    if not m:
        return None
    unit = m.group("unit").strip().strip("$").strip().rstrip(".").strip()
    return m.group("num").strip(), unit
