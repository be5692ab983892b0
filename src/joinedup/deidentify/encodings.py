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

Sealed encodings. The date-of-birth and postcode encodings are stored beside a
partial plaintext of the same value (``birth_month``, ``lsoa_code``), so their
equalities across records would decode: where A's swap token equals B's date
token, A's day of birth is B's birth month; day-equality classes joined across
years and months (year-day, month-day tokens) single out the 29th, 30th and 31st
by the months that lack them; sector and district tokens are labelled by the
LSOAs beside them. So those columns (:data:`SEALED_COLUMNS`) are *sealed* in
``pseudonymised/`` and ``restricted/``: each value is XORed with a 32-byte mask
of its own, cut from keyed BLAKE2b-512 of the record's ``record_token`` under the
``seal`` sub-key (one mask per record and column). Every stored value is then unique
to its record: no two records' sealed values are equal, whether or not their
dates or postcodes are, so without the key no equality is there to read.
Linkage, which holds the key, unseals them into its owner-only scratch space
(:func:`joinedup.linkage.inputs.write_linkage_inputs`) and deletes them when it
ends; the comparisons of linkage/settings.json are unchanged.

Key derivation. Every token kind has its own sub-key, derived once per run as
``HMAC-SHA256(key, "joinedup/<kind>/v1")`` (:data:`TOKEN_KINDS`). The version
suffix lets a kind be re-keyed without touching the others.
:func:`key_fingerprint` is a SHA-256 of a sub-key kept for that alone, so the run
record can say which key made a run's outputs without revealing any key.

Performance: HMACs and Bloom filters are computed once per *distinct* value
(names, dates of birth and postcodes repeat a great deal) and joined back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np
import polars as pl
import pyarrow as pa

# The key-value metadata entry of every pseudonymised file naming the key that made it.
KEY_FINGERPRINT_METADATA = "joinedup.key_fingerprint"

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


# The token kinds and their sub-keys, HMAC-SHA256(key, "joinedup/<kind>/v1"), in
# docs/contracts.md (generated from joinedup.contract_docs).
TOKEN_KINDS: dict[str, str] = {
    "record": "record_token (one source record)",
    "event_id": "spell_token, attendance_token (one hospital event)",
    "nhs_number": "nhs_number_token",
    "name": "given_name_token, family_name_token (one key: swapped names still match)",
    "name_phonetic": "given_name_soundex_token, family_name_soundex_token",
    "name_bloom": "given_name_bloom, family_name_bloom (the Bloom filter bit positions)",
    "date_of_birth": "date_of_birth_token and its ym/yd/md and day/month-swap tokens",
    "postcode": "postcode_token, postcode_sector_token, postcode_district_token",
    "person_id": "person_id (joinedup.linkage.person_ids)",
    "seal": "the per-record masks of the sealed columns (SEALED_COLUMNS)",
    "fingerprint": "the key fingerprint of the run record (hashed, never used to key data)",
}


def derive_key(key: bytes, purpose: str) -> bytes:
    """The sub-key of one token kind (e.g. ``"name"``): HMAC(key, "joinedup/<kind>/v1")."""
    return hmac.digest(key, f"joinedup/{purpose}/v1".encode(), "sha256")


def key_fingerprint(key: bytes) -> str:
    """A short public name of ``key``: SHA-256 of its fingerprint sub-key, never the key.

    Runs under different keys get different fingerprints, so outputs made under one key
    are never mixed with another's; the fingerprint reveals nothing about the key or
    about any token (no data is keyed with the fingerprint sub-key).
    """
    return hashlib.sha256(derive_key(key, "fingerprint")).hexdigest()[:16]


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
    """All keyed encodings of one run, each kind with its own sub-key (:data:`TOKEN_KINDS`).

    The secret itself keys nothing: it is only the input of the derivations, held by
    this object and never returned, logged or written.
    """

    def __init__(self, key: bytes) -> None:
        self._record = derive_key(key, "record")
        self._nhs = derive_key(key, "nhs_number")
        self._name = derive_key(key, "name")
        self._phonetic = derive_key(key, "name_phonetic")
        self._bloom = derive_key(key, "name_bloom")
        self._dob = derive_key(key, "date_of_birth")
        self._postcode = derive_key(key, "postcode")
        self._event = derive_key(key, "event_id")
        self._seal = derive_key(key, "seal")
        self.fingerprint = key_fingerprint(key)

    def __repr__(self) -> str:  # never show key material
        return "Encoder(<keyed>)"

    def seal(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with each :data:`SEALED_COLUMNS` value XORed with its record's mask.

        Sealing twice unseals: :meth:`unseal` is the same operation. ``frame`` needs
        ``record_token``; nulls stay null (that a value is missing is no secret: its
        status column says so).
        """
        if frame.is_empty():
            return frame
        tokens = frame["record_token"].to_list()
        if any(t is None for t in tokens):
            raise ValueError("cannot seal encodings of a row without a record_token")
        # One 256-byte mask per record, 32 bytes per sealed column: SHAKE-256 of the
        # 32-byte seal sub-key followed by the token (a keyed sponge is a PRF: the
        # construction KMAC standardises), one call per record rather than one per column.
        key = self._seal
        masks = np.frombuffer(
            b"".join(hashlib.shake_256(key + t.encode()).digest(_SEAL_BYTES) for t in tokens),
            dtype=np.uint8,
        ).reshape(len(tokens), len(SEALED_COLUMNS), 32)
        sealed = {
            column: _xor_hex(frame[column], masks[:, i])
            for i, column in enumerate(SEALED_COLUMNS)
            if column in frame.columns
        }
        return frame.with_columns(**sealed)

    unseal = seal

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


def _xor_hex(values: pl.Series, masks: np.ndarray) -> pl.Series:
    """64-hex-digit values XORed byte-wise with one 32-byte mask per row (nulls kept)."""
    n = len(values)
    valid = values.is_not_null()
    problem = f"{values.name}: every value of a sealed column must be 64 hex digits (a token)"
    padded = values.fill_null("0" * 64)
    if not (padded.str.len_bytes() == 64).all():
        raise ValueError(f"{problem}; was this file written by the pseudonymise stage?")
    try:
        binary = padded.str.decode("hex").to_arrow().cast(pa.large_binary())
    except pl.exceptions.ComputeError:
        raise ValueError(f"{problem}; was this file written by the pseudonymise stage?") from None
    if isinstance(binary, pa.ChunkedArray):
        binary = binary.combine_chunks()
    start = np.frombuffer(binary.buffers()[1], dtype=np.int64)[binary.offset]
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8)[start : start + 32 * n]
    mixed = (data.reshape(n, 32) ^ masks).tobytes()
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, pa.py_buffer(mixed)])
    out = pl.Series(values.name, fixed.cast(pa.binary())).bin.encode("hex")
    return pl.select(pl.when(valid).then(out).otherwise(None)).to_series().alias(values.name)


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

# Encodings stored sealed (see the module docstring): those a partial plaintext beside
# them (birth_month, lsoa_code) would decode through their equalities across records.
SEALED_COLUMNS: tuple[str, ...] = (
    "date_of_birth_token",
    "date_of_birth_ym_token",
    "date_of_birth_yd_token",
    "date_of_birth_md_token",
    "date_of_birth_swap_token",
    "postcode_token",
    "postcode_sector_token",
    "postcode_district_token",
)
_SEAL_BYTES = 32 * len(SEALED_COLUMNS)
# The encodings linkage compares: all joinedup.linkage.inputs loads of a record, and all
# the restricted opted-out encodings keep (beside source and record_token).
LINKAGE_ENCODINGS: tuple[str, ...] = (
    "nhs_number_token",
    "given_name_token",
    "family_name_token",
    "given_name_soundex_token",
    "family_name_soundex_token",
    *SEALED_COLUMNS,
    "given_name_bloom",
    "family_name_bloom",
    "sex",
)


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
