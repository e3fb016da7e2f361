"""A limit met in a single-stream compressed file (gzip, bzip2, xz) names the member it
would have been (content18 C3): the location read "part2/", with an empty member name."""

import bz2
import gzip
import io
import lzma

import pytest

from tests.unit.pipeline.support import view_of
from tests.unit.scan.support import as_attachment

ZEROS = bytes(8 * 2**20)


def _gzip_named(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=out, mtime=0) as stream:
        stream.write(data)
    return out.getvalue()


@pytest.mark.parametrize("attachment,data,location", [
    ("zeros.bin.gz", gzip.compress(ZEROS), "part2/zeros.bin"),
    ("bomb.gz", _gzip_named("inner.iso", ZEROS), "part2/inner.iso"),   # the gzip's FNAME
    ("zeros.bin.bz2", bz2.compress(ZEROS), "part2/zeros.bin"),
    ("zeros.tar.xz", lzma.compress(ZEROS), "part2/zeros.tar"),
    ("blob", gzip.compress(ZEROS), "part2/blob.out"),
])
def test_a_ratio_limit_in_a_single_stream_file_names_its_member(attachment, data, location):
    view = view_of(as_attachment(attachment, data))
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_ratio"
    assert view.limit_hit.location == location
