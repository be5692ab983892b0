"""Keys (issue 24.2): which key a run uses, the demo key's limits, sub-keys and fingerprints."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY, landed_and_run, run_all, write_landing

from joinedup.catalogue import REPO_ROOT, RUNS, pseudonymised_path
from joinedup.deidentify import pseudonymise
from joinedup.deidentify.encodings import (
    KEY_FINGERPRINT_METADATA,
    TOKEN_KINDS,
    Encoder,
    derive_key,
    key_fingerprint,
)
from joinedup.deidentify.pseudonymise import DemoKeyError
from joinedup.linkage import link
from joinedup.linkage.inputs import LINKAGE_INPUTS, KeyMismatchError
from joinedup.provenance import key_fingerprint_of_run
from joinedup.settings import DEMO_KEY, MissingKeyError, Settings

RUN = "keys-run"
OTHER_KEY = b"a-second-secret-key-for-the-tests"


@pytest.fixture()
def no_key_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.delenv("JOINEDUP_PSEUDONYMISATION_KEY", raising=False)
    monkeypatch.delenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    return monkeypatch


def key_file(tmp_path: Path, key: bytes) -> Path:
    path = tmp_path / "key.txt"
    path.write_bytes(key + b"\n")
    path.chmod(0o600)
    return path


def test_both_a_key_and_a_key_file_is_an_error(
    no_key_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_key_env.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    no_key_env.setenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", str(key_file(tmp_path, KEY)))
    with pytest.raises(MissingKeyError, match="both JOINEDUP_PSEUDONYMISATION_KEY and") as err:
        Settings().key()
    assert DEMO_KEY not in str(err.value) and KEY.decode() not in str(err.value)


def test_an_empty_variable_counts_as_unset(no_key_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_key_env.setenv("JOINEDUP_PSEUDONYMISATION_KEY", "")
    no_key_env.setenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", str(key_file(tmp_path, KEY)))
    assert Settings().key() == KEY
    no_key_env.setenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", "")
    with pytest.raises(MissingKeyError, match="no pseudonymisation key"):
        Settings().key()


def _make_run_env(tmp_path: Path, **env: str) -> str:
    """What `make run` hands joinedup, with a stand-in `uv` that prints a record token.

    The stand-in is run by make exactly as uv would be; it loads the real Settings in
    the environment make built, so the test sees the key the pipeline would use.
    """
    uv = tmp_path / "uv"
    probe = (
        "from joinedup.settings import Settings; import polars as pl; "
        "from joinedup.deidentify.encodings import Encoder; "
        "print(Encoder(Settings().key()).record_tokens(pl.Series(['gp|A1|P1']))[0])"
    )
    uv.write_text(
        f'#!/bin/sh\n[ "$1" = sync ] && exit 0\ncd {tmp_path}\nexec {sys.executable} -c "{probe}"\n'
    )
    uv.chmod(0o700)
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOINEDUP_PSEUDONYMISATION")}
    done = subprocess.run(
        [shutil.which("make") or "make", "-s", "--no-print-directory", "run", f"UV={uv}"],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _token(key: bytes) -> str:
    return Encoder(key).record_tokens(pl.Series(["gp|A1|P1"]))[0]


def test_make_run_uses_the_key_file_and_the_demo_key_only_without_either(tmp_path: Path) -> None:
    path = key_file(tmp_path, KEY)
    assert _make_run_env(tmp_path, JOINEDUP_PSEUDONYMISATION_KEY_FILE=str(path)) == _token(KEY)
    assert _make_run_env(tmp_path, JOINEDUP_PSEUDONYMISATION_KEY=OTHER_KEY.decode()) == _token(
        OTHER_KEY
    )
    assert _make_run_env(tmp_path) == _token(DEMO_KEY.encode())


def test_record_tokens_are_hmacs_with_a_sub_key_of_the_key() -> None:
    record_key = hmac.new(KEY, b"joinedup/record/v1", hashlib.sha256).digest()
    expected = hmac.new(record_key, b"gp|A1|P1", hashlib.sha256).hexdigest()
    assert _token(KEY) == expected


def test_every_token_kind_has_its_own_sub_key() -> None:
    subkeys = {derive_key(KEY, kind) for kind in TOKEN_KINDS}
    assert len(subkeys) == len(TOKEN_KINDS)
    assert KEY not in subkeys
    # The fingerprint names the key without revealing it or any sub-key.
    fingerprint = key_fingerprint(KEY)
    assert fingerprint != key_fingerprint(OTHER_KEY)
    assert all(fingerprint not in (k.hex(), KEY.hex()) for k in subkeys)
    assert fingerprint == hashlib.sha256(derive_key(KEY, "fingerprint")).hexdigest()[:16]


def test_the_demo_key_is_refused_for_data_outside_the_generators_ranges(tmp_path: Path) -> None:
    write_landing(tmp_path)
    run_all(tmp_path, RUN)  # with the tests' own key: fine
    with pytest.raises(DemoKeyError, match="demo pseudonymisation key is public") as err:
        pseudonymise(tmp_path, DEMO_KEY.encode(), RUN)
    assert "NHS number" in str(err.value) and "JOINEDUP_PSEUDONYMISATION_KEY_FILE" in str(err.value)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return landed_and_run(tmp_path_factory.mktemp("keyed"), RUN)


def test_pseudonymised_files_name_the_key_fingerprint(keyed: Path) -> None:
    for source in ("gp", "hospital", "social_care"):
        for path in pseudonymised_path(keyed, source, "x").parent.glob("*.parquet"):
            meta = pl.read_parquet_metadata(path)
            assert meta[KEY_FINGERPRINT_METADATA] == key_fingerprint(KEY), path
    assert key_fingerprint_of_run(keyed) == key_fingerprint(KEY)


def test_linkage_refuses_pseudonymised_data_of_another_key(keyed: Path) -> None:
    with pytest.raises(KeyMismatchError, match="outputs of two keys") as err:
        link(keyed, RUN, OTHER_KEY, charts=False)
    assert key_fingerprint(KEY) in str(err.value) and key_fingerprint(OTHER_KEY) in str(err.value)
    assert not (keyed / LINKAGE_INPUTS).exists()


def test_a_trained_model_of_another_keys_run_is_refused(keyed: Path) -> None:
    summary = link(keyed, RUN, KEY, charts=False)
    assert summary["key_fingerprint"] == key_fingerprint(KEY)
    assert not (keyed / LINKAGE_INPUTS).exists()  # unsealed copies gone after linkage
    model = keyed / "linked/model.json"
    record = {
        "provenance": {
            "run_id": "earlier",
            "key_fingerprint": key_fingerprint(OTHER_KEY),
            "linkage": {"model": {"sha256": hashlib.sha256(model.read_bytes()).hexdigest()}},
            "outputs": [],
        }
    }
    (keyed / RUNS.path).mkdir(parents=True, exist_ok=True)
    (keyed / RUNS.path / "earlier.json").write_text(json.dumps(record))
    with pytest.raises(KeyMismatchError, match="trained model"):
        link(keyed, RUN, KEY, trained_model=model, charts=False)
