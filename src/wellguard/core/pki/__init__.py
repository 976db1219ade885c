"""wellguard's certificate authority: keys, CAs, device and server certificates, CRLs.

Sans-IO: every function takes and returns objects or PEM bytes, and takes the clock as
``now``. Writing files, choosing paths and protecting keys on disk belong to the adapters.
"""

from wellguard.core.pki.authority import (
    CertificateAuthority,
    create_issuing_ca,
    create_root_ca,
    load_certificate_authority,
)
from wellguard.core.pki.encoding import (
    certificate_from_pem,
    certificate_to_pem,
    certificates_from_pem,
    certificates_to_pem,
    crl_from_pem,
    crl_to_pem,
    private_key_from_pem,
    private_key_to_pem,
)
from wellguard.core.pki.issuance import (
    create_device_key_and_csr,
    create_self_signed_device_certificate,
    issue_device_certificate,
    issue_server_certificate,
    load_csr,
)
from wellguard.core.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    PrivateKey,
    check_public_key_strength,
    describe_public_key,
    generate_private_key,
)
from wellguard.core.pki.revocation import (
    RevocationReason,
    RevokedEntry,
    build_crl,
    crl_revoked_serials,
)

__all__ = [
    "DEFAULT_KEY_TYPE",
    "CertificateAuthority",
    "KeyType",
    "PrivateKey",
    "RevocationReason",
    "RevokedEntry",
    "build_crl",
    "certificate_from_pem",
    "certificate_to_pem",
    "certificates_from_pem",
    "certificates_to_pem",
    "check_public_key_strength",
    "create_device_key_and_csr",
    "create_issuing_ca",
    "create_root_ca",
    "create_self_signed_device_certificate",
    "crl_from_pem",
    "crl_revoked_serials",
    "crl_to_pem",
    "describe_public_key",
    "generate_private_key",
    "issue_device_certificate",
    "issue_server_certificate",
    "load_certificate_authority",
    "load_csr",
    "private_key_from_pem",
    "private_key_to_pem",
]
