"""Password protection of documents that are not archives (SPEC §3 encrypted.*): PDF
(an /Encrypt dictionary in the trailer) and Office files (OLE compound files with an
encryption header, encrypted OOXML packages), through msoffcrypto-tool's detector.
Archives (zip, 7z, rar) are told by their own readers in archives.py."""

from __future__ import annotations

import io
import re

__all__ = ["pdf_is_encrypted", "office_is_encrypted"]

_PDF_ENCRYPT = re.compile(rb"/Encrypt\s*(?:\d+\s+\d+\s+R|<<)")


def pdf_is_encrypted(data: bytes) -> bool:
    return _PDF_ENCRYPT.search(data) is not None


def office_is_encrypted(data: bytes) -> bool | None:
    """True/False for an Office document, None when it is no Office file we can read."""
    try:
        import msoffcrypto
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        return bool(office.is_encrypted())
    except Exception:       # not Office (msi, msg, thumbs.db) or a damaged file
        return None
