"""SI constants and the few parse/format helpers the edges need. Inside the core everything is SI."""
KILO, MEGA, GIGA, TERA, PETA = 1e3, 1e6, 1e9, 1e12, 1e15
KB, MB, GB, TB = 1e3, 1e6, 1e9, 1e12          # decimal bytes, as datasheets use
KIB, MIB, GIB = 1024, 1024**2, 1024**3
US, MS = 1e-6, 1e-3
HOUR = 3600.0
DAY = 24 * HOUR
YEAR = 365 * DAY
KWH = 3.6e6                                    # joules


def fmt_si(x: float, unit: str = "", digits: int = 3) -> str:
    """3 significant digits with an SI prefix: fmt_si(1.23e12, 'FLOP') -> '1.23 TFLOP'."""
    if x == 0:
        return f"0 {unit}".strip()
    for p, s in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(x) >= p:
            return f"{x / p:.{digits}g} {s}{unit}".strip()
    return f"{x:.{digits}g} {unit}".strip()
