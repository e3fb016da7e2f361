"""A fault for the pipeline's worker (core/pipeline/run.py rule 2) that puts the need for
more memory than the limit per message inside the builtin engine's unpacking
(tests/integration/test_mem18_unpack_memory_limit.py). Only a test installs it; a message
selects it by the marker of tests/integration/pipeline_faults.py."""

MARKER = b"X-Test-Fault: yes"


def hoard_in_rtf_objects_if_marked(path: str) -> None:
    """For a marked message, the next RTF object the builtin engine decodes
    (core/scan/unpack.py) first takes 3 GB in 16 MB blocks, as a decoder whose output needs
    more memory than the worker's limit (and the 2,656 MB the defaults allowed before
    review18 R5b); once, then the decoder is as it was. Without a limit the blocks are only
    reserved, never written."""
    with open(path, "rb") as handle:
        if MARKER not in handle.read(64 * 1024):
            return
    from core.scan import unpack
    decode = unpack._rtf_objects

    def hoarding(data: bytes):
        unpack._rtf_objects = decode
        hoard = [bytearray(16 << 20) for _ in range(192)]
        hoard.clear()
        yield from decode(data)

    unpack._rtf_objects = hoarding
