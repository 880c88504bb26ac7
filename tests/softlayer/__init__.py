"""Tests of the SoftLayer client: requests, paging, wire parsing, the rate limiter."""
