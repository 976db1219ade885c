"""Device and service identity decisions: SAS tokens, X.509 certificates, IP filter, keys.

Everything here is sans-IO: callers pass the presented credential, the registry records
and the current time, and get either a return value or one ``AuthError`` whose
``reason`` is for the security log only.
"""

from wellguard.core.identity.ipfilter import (
    IpFilterAction,
    IpFilterDecision,
    IpFilterRule,
    evaluate_ip_filter,
)
from wellguard.core.identity.keys import (
    KEY_MAX_BYTES,
    KEY_MIN_BYTES,
    decode_key_bytes,
    derive_device_key,
    generate_symmetric_key,
    validate_symmetric_key,
)
from wellguard.core.identity.sas import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    MAX_EXPIRY,
    MAX_TOKEN_LENGTH,
    SasToken,
    generate_sas_token,
    parse_sas_token,
    resource_matches,
    verify_device_sas,
    verify_sas_token,
    verify_service_sas,
)
from wellguard.core.identity.x509 import (
    MAX_CHAIN_DEPTH,
    MAX_INTERMEDIATES,
    certificate_thumbprints,
    normalize_thumbprint,
    verify_ca_device,
    verify_thumbprint_device,
)

__all__ = [
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "KEY_MAX_BYTES",
    "KEY_MIN_BYTES",
    "MAX_CHAIN_DEPTH",
    "MAX_EXPIRY",
    "MAX_INTERMEDIATES",
    "MAX_TOKEN_LENGTH",
    "IpFilterAction",
    "IpFilterDecision",
    "IpFilterRule",
    "SasToken",
    "certificate_thumbprints",
    "decode_key_bytes",
    "derive_device_key",
    "evaluate_ip_filter",
    "generate_sas_token",
    "generate_symmetric_key",
    "normalize_thumbprint",
    "parse_sas_token",
    "resource_matches",
    "validate_symmetric_key",
    "verify_ca_device",
    "verify_device_sas",
    "verify_sas_token",
    "verify_service_sas",
    "verify_thumbprint_device",
]
