"""What a DNS list's answer means (RFC 5782 §2.1; Spamhaus' error codes): one place for the
settings' return-code rule and the core's lookups (core/smtp/rbl.py)."""

from __future__ import annotations

import ipaddress

__all__ = ["LISTING_NET", "ERROR_CODE_NET"]

# A listing is an A record in 127.0.0.0/8; any other address is not a list entry (a resolver
# that rewrites NXDOMAIN to its own web server must not list everybody).
LISTING_NET = ipaddress.ip_network("127.0.0.0/8")
# ...except 127.255.255.0/24, the range Spamhaus reserved in 2019 for errors about the query
# itself (.254 "query via public/open resolver", .255 "excessive number of queries"), which
# "should NOT be interpreted as any sort of reputation".
ERROR_CODE_NET = ipaddress.ip_network("127.255.255.0/24")
