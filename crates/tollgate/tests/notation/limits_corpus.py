#!/usr/bin/env python3
"""Generate a reference corpus of how the Python `limits` library parses
rate-limit strings (``limits.parse_many``), for testing tollgate's parser.

Usage (needs `pip install limits`; no network access is used):

    python3 limits_corpus.py

Writes ``limits_corpus.jsonl`` next to this script:

* line 1: ``{"limits_version": "<version>"}``
* then one object per line:
  ``{"input": "<string>", "limits": [[amount, window_seconds], ...]}`` when
  ``limits.parse_many(input)`` accepts the string (``item.amount``,
  ``item.get_expiry()``, in order), or ``{"input": "<string>", "limits": null}``
  when it raises.

Numbers are written as JSON integers exactly as Python computes them; some
exceed u64 (and even u128) on purpose. The file is pure ASCII (non-ASCII
characters are written as ``\\uXXXX`` escapes) so that line splitting never
trips over U+0085 / U+2028 / U+2029 inside an input.

Output is deterministic: fixed random seed, duplicates dropped (first
occurrence kept), no dependence on hash ordering.

Note: numbers are kept well under 4300 digits, because CPython >= 3.11 (and
security backports) refuse int() of longer digit strings, which would make
the corpus depend on the interpreter rather than on `limits`.
"""

import json
import os
import random
import sys

import limits

SEED = 20240611
N_RANDOM = 3600

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limits_corpus.jsonl")

UNITS = ["second", "minute", "hour", "day", "month", "year"]
UNITS_ALL = UNITS + [u + "s" for u in UNITS]
SEPS = [";", ",", "|"]

# Whitespace that Python's `\s` matches (str.isspace()) ...
UNI_SPACE = [
    "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", "\x85",
    "\xa0", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a", "\u2028",
    "\u2029", "\u202f", "\u205f", "\u3000",
]
# ... and look-alikes that it does not.
NON_SPACE = ["\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\x00", "\x7f"]

ARABIC_INDIC = "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
EXT_ARABIC = "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9"
FULLWIDTH = "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"
DEVANAGARI = "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f"


def to_digits(s, table):
    return "".join(table[int(c)] if c.isascii() and c.isdigit() else c for c in s)


def evaluate(s):
    try:
        items = limits.parse_many(s)
    except Exception:  # ValueError in practice; anything raised counts as rejection
        return None
    return [[int(i.amount), int(i.get_expiry())] for i in items]


# --------------------------------------------------------------------------
# Hand-written cases
# --------------------------------------------------------------------------


def handwritten():
    c = []
    add = c.extend

    # Documented forms
    add([
        "10/second", "10 per second", "10 PER Second", "2 per 30 seconds",
        "10/2seconds", "100/day; 1000 per 7 days", "1 per 2 hours",
        "10/hour", "100/day", "2000 per year", "1/minute;10/hour",
        "1/second, 5/minute", "1/second | 5/minute", "1 per second;10 per minute",
        "10/second,5/minute|1/day;3/year", "5 PER 2 HOURS",
    ])

    # Every unit, singular and plural, several spellings and cases
    for u in UNITS_ALL:
        for form in (u, u.upper(), u.capitalize(), u.swapcase(),
                     "".join(ch.upper() if i % 2 else ch for i, ch in enumerate(u))):
            add([f"1/{form}", f"3 per {form}", f"7 per 2 {form}", f"9/4{form}",
                 f"5 Per {form}", f"5 pEr 3{form}"])
    # Every separator between every pair of units
    for sep in SEPS:
        for a in UNITS:
            for b in UNITS:
                c.append(f"1/{a}{sep}2 per 3 {b}s")
        c.append(f"1/second {sep} 2/minute")
        c.append(f"1/second{sep}2/minute{sep}3/hour{sep}4/day{sep}5/month{sep}6/year")

    # Empty, whitespace only
    add(["", " ", "   ", "\t", "\n", "\r\n", " \t\n ", "\u3000", "\xa0"])

    # Separators: trailing/leading/doubled/lone/mixed
    for sep in SEPS:
        add([
            sep, sep * 2, f"10/second{sep}", f"{sep}10/second", f"10/second{sep} ",
            f" {sep}10/second", f"10/second{sep}{sep}5/minute",
            f"10/second {sep} {sep} 5/minute", f"{sep}10/second{sep}",
            f"10/second{sep}5", f"10/second{sep}minute", f"10/second{sep}/minute",
        ])
    add(["10/second;,5/minute", "10/second,|5/minute", "10/second;5/minute;",
         "10/second 5/minute", "10/second5/minute", "10/second\n5/minute",
         "10/second.5/minute", "10/second:5/minute", "10/second&5/minute",
         "10/second/5/minute", "10/second and 5/minute"])

    # Colon before a separator (EXPR has `(:?` => optional ':' before separator)
    for sep in SEPS:
        add([
            f"10/second:{sep}5/minute", f"10/second :{sep}5/minute",
            f"10/second: {sep}5/minute", f"10/second::{sep}5/minute",
            f"10/second:{sep}", f"10/second{sep}:5/minute",
            f"10/second{sep}5/minute:", f"10/second:{sep}5/minute:{sep}1/day",
            f"10/second\t:{sep}\t5/minute", f"10/second :{sep} 5/minute :",
        ])
    add(["10/second:", "10/second :", ":10/second", "10:/second", "10/:second",
         "10/second::", ":", ":;", "10/second:;", "10/second;:", "10 : per second"])

    # Multiples: 0, leading zeros, big
    add([
        "10/0 seconds", "10/0second", "10/00second", "10/000 seconds",
        "10/007 minutes", "10/0007hours", "10 per 0 days", "10 per 00 day",
        "10/01 second", "10/010 seconds", "10/1 second", "10/1 seconds",
        "10/1000000 years", "10/0 years", "1 per 0 month", "1/00000000000000000000 seconds",
        "1/000000000000000000001 hour",
    ])
    # Amounts: 0, leading zeros, decimals, negatives, signs, exponents, hex...
    add([
        "0/second", "00/second", "0 per 0 seconds", "007/second", "0010 per minute",
        "000000000000000000000000000001/second",
        "1.5/second", "10.0/second", "10/1.5 seconds", "10/2.0seconds", ".5/second",
        "5./second", "10,5/second", "1_000/second", "1 000/second",
        "-1/second", "10/-1 seconds", "-0/second", "+5/second", "10/+5 seconds",
        "+5 per second", "1e3/second", "1E3/second", "10/1e2 seconds", "1e/second",
        "0x10/second", "0X1F/second", "10/0x10 seconds", "0b101/second", "0o17/second",
        "inf/second", "nan/second", "one/second", "10/two seconds", "ten per second",
        "10 per second per second", "1/2/second", "10 per 2 per second",
        "Ⅻ/second", "²/second", "10/²seconds", "١٠/second",
    ])
    # Huge numbers
    big = [
        "18446744073709551615", "18446744073709551616", "18446744073709551617",
        "99999999999999999999", "100000000000000000000",
        "340282366920938463463374607431768211455",
        "340282366920938463463374607431768211456",
        "18446744073", "18446744074", "18446744073709551",
        "9223372036854775807", "9223372036854775808",
        "123456789012345678901234567890", "1" + "0" * 60, "9" * 100,
    ]
    for n in big:
        add([f"{n}/second", f"1/{n} seconds", f"1 per {n} years", f"{n} per {n} days",
             f"{n}/month"])
    # window exactly around 2**64-1 nanoseconds: 18446744073.709551615 s
    for u, secs in (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400),
                    ("month", 2592000), ("year", 31104000)):
        lim = (2**64 - 1) // 10**9 // secs
        for m in (lim - 1, lim, lim + 1):
            c.append(f"1/{m} {u}s")

    # Whitespace in odd places
    add([
        "10 / 2 seconds", "10 /2 seconds", "10/ 2 seconds", "10/2 seconds",
        "10per second", "10persecond", "10 persecond", "10per2seconds",
        "10 per2 seconds", "10 per 2seconds", "10 /second", "10/ second",
        " 10/second", "10/second ", "  10  /  second  ", "10\t/\tsecond",
        "10\n/\nsecond", "10/second\n", "10/second\r\n", "\n10/second",
        "10/second\n\n", "10/second\n;5/minute", "10/second;\n5/minute\n",
        "1 0/second", "10/sec ond", "10 p er second", "10 pe r second",
        "10 pers econd", "10/ per second", "10 per/second", "10per/second",
        "10//second", "10 // second", "10 per per second", "10perper second",
        "10 PERSECOND", "10\tper\tsecond", "10\nper\nsecond", "10/2\nseconds",
        "10/second\t", "\t10/second\t;\t5/minute\t",
    ])

    # Unknown units and plural-like junk
    for u in ["sec", "secs", "s", "m", "min", "mins", "h", "hr", "hrs", "d", "ms",
              "us", "ns", "week", "weeks", "w", "wk", "fortnight", "decade",
              "secondss", "secondes", "minutess", "hourss", "dayss", "monthss",
              "yearss", "seconde", "secund", "second_", "seco", "minut", "our",
              "yr", "yrs", "mo", "mon", "y", "per", "pers", "persecond", "a",
              "millisecond", "milliseconds", "sseconds", "daily", "hourly"]:
        add([f"10/{u}", f"10 per {u}", f"10/2 {u}"])
    add(["10/second x", "10/second/", "10/second.", "10/second!", "10/second s",
         "10/second 1", "10/second1", "10/second per", "10/seconds/", "x10/second",
         "10x/second", "10/x2 seconds", "10/2x seconds", "10/second#comment",
         "10/second-", "10/second_", "10/second'", '"10/second"', "(10/second)"])

    # Lone slash, per without numbers, etc.
    add(["/", "//", "per", "PER", " per ", "/second", "per second", "second",
         "seconds", "10", "10/", "10 per", "10 per ", "10/2", "10 per 2",
         "/2 seconds", "per 2 seconds", "10 second", "10 2 seconds", "10seconds",
         "10 /", "per/", "/per", "10/per", "10perper", "10 per2per"])

    # Unicode digits
    for table in (ARABIC_INDIC, EXT_ARABIC, FULLWIDTH, DEVANAGARI):
        for s in ("10/second", "10/2 seconds", "1 per 30 minutes"):
            c.append(to_digits(s, table))
        c.append(to_digits("1", table) + "0/second")
        c.append("10/" + to_digits("5", table) + " seconds")
    add(["10\uff0fsecond", "10\u2215second", "10\u2044second", "10/second\uff1b5/minute",
         "10/second\uff0c5/minute", "10/second\uff5c5/minute", "10/second\u037e5/minute",
         "10/second\uff1a;5/minute"])

    # Unicode whitespace (in every whitespace position) and look-alikes
    for ws in UNI_SPACE + NON_SPACE:
        add([
            f"{ws}10/second", f"10{ws}/second", f"10/{ws}second", f"10/second{ws}",
            f"10{ws}per{ws}second", f"10/2{ws}seconds", f"10/second{ws};5/minute",
            f"10/second;{ws}5/minute", f"10/second :{ws};5/minute", f"{ws}",
        ])
    add(["\x1c\x1d\x1e\x1f10/second\x1c\x1d\x1e\x1f", "\u200b10/second",
         "10\u200b/second", "10/sec\u200bond", "10/second\u00ad", "10/sec\u00adond"])

    # Unicode case-fold look-alikes for [a-z] under re.IGNORECASE:
    # U+017F LONG S, U+0130 I WITH DOT ABOVE, U+0131 DOTLESS I, U+212A KELVIN SIGN
    add([
        "10/second\u017f", "10/\u017fecond", "10/\u017fECOND", "10/\u017fecond\u017f",
        "10/hour\u017f", "10/day\u017f", "10/minute\u017f", "10/month\u017f",
        "10/year\u017f", "10 per \u017fecond", "10 per 2 \u017feconds",
        "10/m\u0131nute", "10/M\u0131NUTE", "10/m\u0130nute", "10/M\u0130NUTE",
        "10/m\u0131nutes", "10/m\u0130nutes", "10 per m\u0131nute",
        "10/\u212a", "10/\u212aecond", "10/second\u212a", "10/wee\u212a",
        "10 \u017fer second", "10 per \u212a",
        "10 p\u0435r second",  # Cyrillic e
        "10/s\u0435cond", "10/sec\u043end", "10/\u0455econd",  # Cyrillic look-alikes
        "10/\uff53\uff45\uff43\uff4f\uff4e\uff44",  # fullwidth 'second'
        "10 \uff50\uff45\uff52 second", "10/SECOND", "10/Second", "10/\u00dfecond",
        "10/second\u0307", "10/secon\u0064\u0301", "10/\u01c6ay", "10/da\u00ff",
        "10/ho\u00fcr", "10/\u1e9eecond",
    ])
    return c


# --------------------------------------------------------------------------
# Random strings from a small grammar, then mutated
# --------------------------------------------------------------------------

JUNK = list("x.-+_#*!?@&=()[]{}'\"\\~^%$0123456789:;,|/ \taAsSeEpPrR") + [
    "\u017f", "\u0131", "\u0130", "\u212a", "\u0661", "\uff11", "\u00e9", "\U0001f600",
]


def gen_ws(r):
    k = r.random()
    if k < 0.55:
        return ""
    if k < 0.85:
        return " " * r.randint(1, 2)
    if k < 0.93:
        return r.choice(["\t", "\n", "  \t", "\r\n"])
    return r.choice(UNI_SPACE + NON_SPACE)


def gen_number(r):
    k = r.random()
    if k < 0.6:
        return str(r.randint(1, 100))
    if k < 0.7:
        return "0" * r.randint(1, 3) + str(r.randint(0, 99))
    if k < 0.78:
        return "0"
    if k < 0.86:
        return str(r.randint(10**19, 10**22))
    if k < 0.9:
        return str(r.randint(1000, 10**9))
    if k < 0.94:
        return r.choice(["1.5", "-1", "+5", "1e3", "0x10", "1_0", "\u0661", "\uff12"])
    return str(r.randint(100, 999))


def gen_unit(r):
    k = r.random()
    if k < 0.75:
        u = r.choice(UNITS_ALL)
    elif k < 0.9:
        u = r.choice(["sec", "min", "hr", "ms", "week", "weeks", "secondss", "per",
                      "\u017fecond", "m\u0131nute", "days\u017f", "d", "s", "yr"])
    else:
        u = r.choice(UNITS_ALL) + r.choice(["s", "x", "1", "/", ""])
    m = r.random()
    if m < 0.2:
        u = u.upper()
    elif m < 0.35:
        u = "".join(ch.upper() if r.random() < 0.5 else ch for ch in u)
    return u


def gen_single(r):
    parts = [gen_ws(r), gen_number(r), gen_ws(r)]
    k = r.random()
    if k < 0.5:
        parts.append("/")
    elif k < 0.95:
        parts.append(r.choice(["per", "PER", "Per", "pEr"]))
    else:
        parts.append(r.choice(["", "//", "p", "pr", "per/", "\u2215"]))
    parts.append(gen_ws(r))
    if r.random() < 0.4:
        parts.append(gen_number(r))
        parts.append(gen_ws(r))
    parts.append(gen_unit(r))
    parts.append(gen_ws(r))
    return "".join(parts)


def gen_limit_string(r):
    n = r.choice([1, 1, 1, 2, 2, 3, 4])
    out = gen_single(r)
    for _ in range(n - 1):
        if r.random() < 0.12:
            out += r.choice([":", " :", ": ", "::"])
        out += r.choice(SEPS) if r.random() < 0.95 else r.choice(["", ";;", " ", ":"])
        out += gen_single(r)
    if r.random() < 0.04:
        out = r.choice(SEPS) + out
    if r.random() < 0.04:
        out += r.choice(SEPS + [":", ":;", "\n"])
    return out


def mutate(r, s):
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        op = r.random()
        pos = r.randint(0, len(s))
        ch = r.choice(JUNK) if r.random() < 0.8 else r.choice(UNI_SPACE + NON_SPACE)
        if op < 0.35 or not s:
            s = s[:pos] + ch + s[pos:]
        elif op < 0.7:
            pos = min(pos, len(s) - 1)
            s = s[:pos] + s[pos + 1:]
        else:
            pos = min(pos, len(s) - 1)
            s = s[:pos] + ch + s[pos + 1:]
    return s


def randoms(r, n):
    out = []
    for _ in range(n):
        s = gen_limit_string(r)
        if r.random() < 0.5:
            s = mutate(r, s)
        out.append(s)
    return out


def main():
    r = random.Random(SEED)
    cases = handwritten() + randoms(r, N_RANDOM)
    seen = set()
    rows = []
    for s in cases:
        if s in seen:
            continue
        seen.add(s)
        rows.append({"input": s, "limits": evaluate(s)})
    with open(OUT, "w", encoding="ascii", newline="\n") as f:
        f.write(json.dumps({"limits_version": limits.__version__}) + "\n")
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=True) + "\n")
    accepted = sum(1 for row in rows if row["limits"] is not None)
    print(f"limits {limits.__version__}: {len(rows)} entries, {accepted} accepted, "
          f"{len(rows) - accepted} rejected -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
