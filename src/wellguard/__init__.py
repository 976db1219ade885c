"""wellguard: a self-hosted IoT platform, secure end to end."""

from wellguard.errors import WellguardError

__version__ = "0.1.0"

__all__ = ["WellguardError", "__version__"]
