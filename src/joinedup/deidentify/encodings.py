"""Keyed tokens and linkage encodings: Splink can compare them without seeing a value.

Everything is keyed from the one pseudonymisation secret, with a separate
sub-key per purpose (``HMAC(key, "joinedup/<purpose>")``) so a token of one kind
can never be matched against a token of another, and learning one sub-key does
not reveal the others or the secret. The same sub-key is deliberately shared
where linkage must compare across fields: given and family names use one key,
so a record with the two names swapped still matches token for token.

Why so many encodings of one value:

* exact tokens (name, NHS number, date of birth, postcode) for exact matches;
* Soundex tokens of names for spelling variants that sound alike;
* partial date-of-birth tokens (year-month, year-day, month-day) so a record
  with exactly one wrong component still agrees on two of the three, and a
  token of the day/month-swapped date, compared with the other record's full
  date token, to catch the commonest transcription error;
* postcode sector and district tokens for people recorded at a nearby or
  previous address in the same area;
* keyed Bloom filters of padded name bigrams for fuzzy (Dice) similarity.
  Each bigram sets ``BLOOM_HASHES`` bits chosen by independent keyed HMACs
  (not double hashing, which is known to be attackable). The filter is a
  ``BLOOM_BITS``-character string of '0'/'1' so DuckDB can ``CAST(x AS BIT)``
  and compute ``2*bit_count(a & b) / (bit_count(a) + bit_count(b))``.

Performance: HMACs and Bloom filters are computed once per *distinct* value
(names, dates of birth and postcodes repeat a great deal) and joined back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import polars as pl

BLOOM_BITS = 512
BLOOM_HASHES = 15

# Soundex digit per letter; vowels (and Y) separate runs, H and W do not.
_SOUNDEX = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
    **dict.fromkeys("AEIOUY", ""),
    **dict.fromkeys("HW", None),
}


def derive_key(key: bytes, purpose: str) -> bytes:
    """The sub-key for one purpose (e.g. ``"name"``), derived from the secret."""
    return hmac.digest(key, f"joinedup/{purpose}".encode(), "sha256")


def hmac_hex(key: bytes, values: Iterable[str]) -> list[str]:
    """Lowercase hex HMAC-SHA256 of each value (RFC 2104, identical to ``hmac.new``).

    The inner and outer hash states are keyed once and copied per value, which
    is about twice as fast as ``hmac.digest`` re-deriving them for every value.
    """
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    out: list[str] = []
    for value in values:
        i = inner.copy()
        i.update(value.encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        out.append(o.hexdigest())
    return out


def _map_unique(values: pl.Series, func, dtype: pl.DataType) -> pl.Series:
    """Apply a Python function to each distinct non-null value once and map it back."""
    distinct = values.drop_nulls().unique()
    mapping = pl.DataFrame(
        {"__v__": distinct, "__t__": pl.Series(func(distinct.to_list()), dtype=dtype)},
        schema={"__v__": values.dtype, "__t__": dtype},
    )
    joined = values.to_frame("__v__").join(mapping, on="__v__", how="left", maintain_order="left")
    return joined["__t__"].alias(values.name)


def keyed_tokens(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC tokens of a text column (null stays null), computed over its distinct values."""
    return _map_unique(values, lambda vs: hmac_hex(key, vs), pl.String())


def normalise_name_expr(expr: pl.Expr) -> pl.Expr:
    """Upper-case A-Z only: accents folded (Zoë -> ZOE), spaces, hyphens and apostrophes dropped."""
    folded = expr.str.normalize("NFKD").str.to_uppercase().str.replace_all(r"[^A-Z]", "")
    return pl.when(folded == "").then(None).otherwise(folded)


def soundex(name: str) -> str:
    """American Soundex of an upper-case A-Z name (e.g. ROBERT -> R163, ASHCRAFT -> A261)."""
    if not name:
        return ""
    first = name[0]
    digits: list[str] = []
    last = _SOUNDEX.get(first)
    for ch in name[1:]:
        code = _SOUNDEX.get(ch, "")
        if code is None:  # H and W: do not separate equal codes
            continue
        if code and code != last:
            digits.append(code)
        last = code
    return (first + "".join(digits) + "000")[:4]


def bloom_filters(
    names: list[str], key: bytes, bits: int = BLOOM_BITS, hashes: int = BLOOM_HASHES
) -> list[str]:
    """Keyed Bloom filters of padded bigrams ('_JO','JO',...,'N_'), as '0'/'1' strings."""
    masks: dict[str, int] = {}

    def bigram_mask(gram: str) -> int:
        mask = masks.get(gram)
        if mask is None:
            mask = 0
            for i in range(hashes):
                digest = hmac.digest(key, f"{i}|{gram}".encode(), "sha256")
                mask |= 1 << (int.from_bytes(digest[:8], "big") % bits)
            masks[gram] = mask
        return mask

    out: list[str] = []
    for name in names:
        padded = f"_{name}_"
        value = 0
        for gram in {padded[i : i + 2] for i in range(len(padded) - 1)}:
            value |= bigram_mask(gram)
        out.append(format(value, f"0{bits}b"))
    return out


def dice(a: str, b: str) -> float:
    """Dice similarity of two '0'/'1' Bloom filters (for tests and inspection)."""
    x, y = int(a, 2), int(b, 2)
    total = x.bit_count() + y.bit_count()
    return 2 * (x & y).bit_count() / total if total else 0.0


class Encoder:
    """All keyed encodings of one run, each with its own purpose sub-key.

    The secret itself is only used for ``record_token`` (fixed by docs/contracts.md);
    it is held by this object and never returned, logged or written.
    """

    def __init__(self, key: bytes) -> None:
        self._record = key
        self._nhs = derive_key(key, "nhs_number")
        self._name = derive_key(key, "name")
        self._phonetic = derive_key(key, "name_phonetic")
        self._bloom = derive_key(key, "name_bloom")
        self._dob = derive_key(key, "date_of_birth")
        self._postcode = derive_key(key, "postcode")
        self._event = derive_key(key, "event_id")

    def __repr__(self) -> str:  # never show key material
        return "Encoder(<keyed>)"

    def record_tokens(self, messages: pl.Series) -> pl.Series:
        """``record_token`` from ``"<source>|<org_code>|<local_id>"`` messages."""
        return keyed_tokens(messages, self._record)

    def event_tokens(self, messages: pl.Series) -> pl.Series:
        return keyed_tokens(messages, self._event)

    def nhs_tokens(self, values: pl.Series) -> pl.Series:
        return keyed_tokens(values, self._nhs)

    def name_tokens(self, normalised: pl.Series) -> pl.Series:
        return keyed_tokens(normalised, self._name)

    def soundex_tokens(self, normalised: pl.Series) -> pl.Series:
        return _map_unique(
            normalised, lambda vs: hmac_hex(self._phonetic, [soundex(v) for v in vs]), pl.String()
        )

    def blooms(self, normalised: pl.Series) -> pl.Series:
        return _map_unique(normalised, lambda vs: bloom_filters(vs, self._bloom), pl.String())

    def dob_tokens(self, messages: pl.Series) -> pl.Series:
        return keyed_tokens(messages, self._dob)

    def postcode_tokens(self, messages: pl.Series) -> pl.Series:
        return keyed_tokens(messages, self._postcode)


# Column order and types of the linkage encodings every record-grain table carries.
ENCODING_SCHEMA: dict[str, pl.DataType] = {
    "nhs_number_token": pl.String(),
    "nhs_number_status": pl.String(),
    "given_name_token": pl.String(),
    "family_name_token": pl.String(),
    "given_name_soundex_token": pl.String(),
    "family_name_soundex_token": pl.String(),
    "given_name_bloom": pl.String(),
    "family_name_bloom": pl.String(),
    "date_of_birth_token": pl.String(),
    "date_of_birth_ym_token": pl.String(),
    "date_of_birth_yd_token": pl.String(),
    "date_of_birth_md_token": pl.String(),
    "date_of_birth_swap_token": pl.String(),
    "date_of_birth_status": pl.String(),
    "postcode_token": pl.String(),
    "postcode_sector_token": pl.String(),
    "postcode_district_token": pl.String(),
    "postcode_status": pl.String(),
    "sex": pl.String(),
    "sex_status": pl.String(),
}


def encode_demographics(
    demographics: pl.DataFrame, encoder: Encoder, record_tokens: pl.Series | None = None
) -> pl.DataFrame:
    """Linkage encodings of record-grain demographics (see ``records.DEMOGRAPHICS``).

    Returns ``source``, ``org_code``, ``record_token``, ``birth_month`` and the
    columns of :data:`ENCODING_SCHEMA`; raw values are dropped. ``record_tokens``
    (aligned with the rows) saves recomputing tokens the caller already has.
    """
    dob = pl.col("date_of_birth")
    day_le_12 = dob.dt.day() <= 12
    swapped = pl.concat_str(
        dob.dt.strftime("%Y"),
        pl.lit("-"),
        dob.dt.strftime("%d"),
        pl.lit("-"),
        dob.dt.strftime("%m"),
    )
    postcode = pl.col("postcode")
    messages = demographics.select(
        pl.concat_str(
            pl.col("source"), pl.lit("|"), pl.col("org_code"), pl.lit("|"), pl.col("local_id")
        ).alias("record"),
        normalise_name_expr(pl.col("given_name")).alias("given"),
        normalise_name_expr(pl.col("family_name")).alias("family"),
        ("d|" + dob.dt.strftime("%Y-%m-%d")).alias("dob"),
        ("ym|" + dob.dt.strftime("%Y-%m")).alias("dob_ym"),
        ("yd|" + dob.dt.strftime("%Y-%d")).alias("dob_yd"),
        ("md|" + dob.dt.strftime("%m-%d")).alias("dob_md"),
        pl.when(day_le_12).then("d|" + swapped).otherwise(None).alias("dob_swap"),
        ("pc|" + postcode).alias("pc"),
        ("sector|" + postcode.str.slice(0, postcode.str.len_chars() - 2)).alias("pc_sector"),
        ("district|" + postcode.str.split(" ").list.first()).alias("pc_district"),
    )  # fmt: skip
    e = encoder
    return pl.DataFrame(
        {
            "source": demographics["source"],
            "org_code": demographics["org_code"],
            "record_token": (
                e.record_tokens(messages["record"]) if record_tokens is None else record_tokens
            ),
            "birth_month": demographics["date_of_birth"].dt.strftime("%Y-%m"),
            "nhs_number_token": e.nhs_tokens(demographics["nhs_number"]),
            "nhs_number_status": demographics["nhs_number_status"],
            "given_name_token": e.name_tokens(messages["given"]),
            "family_name_token": e.name_tokens(messages["family"]),
            "given_name_soundex_token": e.soundex_tokens(messages["given"]),
            "family_name_soundex_token": e.soundex_tokens(messages["family"]),
            "given_name_bloom": e.blooms(messages["given"]),
            "family_name_bloom": e.blooms(messages["family"]),
            "date_of_birth_token": e.dob_tokens(messages["dob"]),
            "date_of_birth_ym_token": e.dob_tokens(messages["dob_ym"]),
            "date_of_birth_yd_token": e.dob_tokens(messages["dob_yd"]),
            "date_of_birth_md_token": e.dob_tokens(messages["dob_md"]),
            "date_of_birth_swap_token": e.dob_tokens(messages["dob_swap"]),
            "date_of_birth_status": demographics["date_of_birth_status"],
            "postcode_token": e.postcode_tokens(messages["pc"]),
            "postcode_sector_token": e.postcode_tokens(messages["pc_sector"]),
            "postcode_district_token": e.postcode_tokens(messages["pc_district"]),
            "postcode_status": demographics["postcode_status"],
            "sex": demographics["sex"],
            "sex_status": demographics["sex_status"],
        }
    )
