"""Shared CAs for the PKI tests, made once per session at a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wellguard.core.pki import CertificateAuthority, create_issuing_ca, create_root_ca

FIXED_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture(scope="session")
def root_ca() -> CertificateAuthority:
    return create_root_ca("Test Root CA", now=FIXED_NOW)


@pytest.fixture(scope="session")
def issuing_ca(root_ca: CertificateAuthority) -> CertificateAuthority:
    return create_issuing_ca(root_ca, "Test Issuing CA", now=FIXED_NOW)
