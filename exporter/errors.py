"""Why a SoftLayer request failed: the error the client raises, and the reasons it names.

This module sits below both the HTTP client (:mod:`exporter.softlayer`), which classifies
failures, and the metrics layer (:mod:`exporter.api_stats`, :mod:`exporter.metrics`), which
exports them as the ``reason`` label, so that neither has to import the other.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "EXPIRED_BEARER_CODE",
    "RETRYABLE_REASONS",
    "ErrorReason",
    "SoftLayerError",
    "reasons_help",
]


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
#: The error code of an expired IAM bearer token (softlayer-go ``session.go`` ``NeedsRefresh``).
EXPIRED_BEARER_CODE: Final = "SoftLayer_Exception_Account_Authentication_AccessTokenValidation"
_INTERNAL_ERROR: Final = "internal error"


class SoftLayerError(Exception):
    """A failed SoftLayer API (or IAM) request; ``str()`` is safe to log and export."""

    def __init__(
        self,
        reason: ErrorReason,
        message: str,
        *,
        method: str,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{method}: {message}")
        self.reason = reason
        self.method = method
        self.detail = message  # what went wrong, without where
        self.status = status
        self.code = code
        self.hint = hint  # what an operator should check, for the field log

    @property
    def retryable(self) -> bool:
        """True when repeating the same request may succeed."""
        return self.reason in RETRYABLE_REASONS

    @property
    def token_expired(self) -> bool:
        """True when the API rejected an IAM bearer token as expired."""
        return self.code == EXPIRED_BEARER_CODE

    @property
    def internal_error(self) -> bool:
        """True for SoftLayer's ``Internal Error``, which usually means "asked too much"."""
        return self.reason is ErrorReason.SERVER and _INTERNAL_ERROR in str(self).lower()

    @property
    def page_too_big(self) -> bool:
        """True for answers that a smaller page may avoid: ``Internal Error`` or a timeout.

        "usually the `Internal Error` messages from the API are because you are trying to
        retrieve a lot of data with only one request" (softlayer-python#1124); SLDN's samples
        page by 100 "to avoid limitSize or timeout errors".
        """
        return self.internal_error or self.reason is ErrorReason.TIMEOUT


def reasons_help() -> str:
    """Return the HELP text of ``softlayer_api_errors_total``, naming every reason."""
    return (
        "Failed SoftLayer API requests by reason: "
        + ", ".join(reason.value for reason in ErrorReason)
        + " (incomplete: a paged list whose completeness could not be proven)."
    )
