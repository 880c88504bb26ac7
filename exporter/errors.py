"""Why a SoftLayer request failed: the reasons shared by the client, poller and metrics.

This module sits below both the HTTP client (:mod:`exporter.softlayer`), which classifies
failures, and the metrics layer (:mod:`exporter.api_stats`, :mod:`exporter.metrics`), which
exports them as the ``reason`` label, so that neither has to import the other.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["RETRYABLE_REASONS", "ErrorReason", "reasons_help"]


class ErrorReason(StrEnum):
    """Why a request failed; the ``reason`` label of ``softlayer_api_errors_total``."""

    AUTH = "auth"
    PERMISSION = "permission"  # authenticated, but the user may not see this
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    SERVER = "server"
    CLIENT = "client"
    DECODE = "decode"
    NETWORK = "network"
    MASK = "mask"  # the objectMask names a property SoftLayer does not know
    PARSE = "parse"  # SoftLayer could not parse the mask or filter
    VALIDATION = "validation"  # SoftLayer rejected a value of the request
    INCOMPLETE = "incomplete"  # a paged list whose completeness could not be proven


#: Reasons where the same request may succeed a moment later. Auth, permission, client,
#: decode, mask, parse and validation failures repeat identically (SoftLayer sends several
#: of them with HTTP 500, softlayer-python#2088, maximilien/softlayer-go#136), so retrying
#: them only burns the rate budget; softlayer-go retries only rate limits and timeouts.
RETRYABLE_REASONS: Final = frozenset(
    {ErrorReason.RATE_LIMITED, ErrorReason.TIMEOUT, ErrorReason.SERVER, ErrorReason.NETWORK}
)


def reasons_help() -> str:
    """Return the HELP text of ``softlayer_api_errors_total``, naming every reason."""
    return (
        "Failed SoftLayer API requests by reason: "
        + ", ".join(reason.value for reason in ErrorReason)
        + " (incomplete: a paged list whose completeness could not be proven)."
    )
