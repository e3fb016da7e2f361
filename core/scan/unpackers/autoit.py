"""Compiled AutoIt scripts (AutoIt v3 "AU3!EA05" / "AU3!EA06"), as libclamav's autoit.c
reads them (docs/antivirus.md "What it unpacks").

A compiled script is the AutoIt interpreter with the script appended: a 16-byte marker,
"AU3!EA05" or "AU3!EA06", 16 bytes, then one record per file — the script itself and every
FileInstall()ed file:

    u32 FILE magic | u32 n ^ k1, n obfuscated bytes ("magic string", ">>>AUTOIT SCRIPT<<<"
    for the script) | u32 m ^ k2, m obfuscated bytes (the original name) | u8 compressed
    | u32 csize ^ k3 | u32 usize ^ k3 | u32 checksum ^ k4 | 16 bytes (file times)
    | csize encrypted bytes

EA05 encrypts with MT19937 (seed 0x22af + the sum of the 16 bytes after the version), EA06
with a lagged-Fibonacci generator (ClamAV's "LAME", seed 0x2477); EA06 lengths count UTF-16
units. A compressed body is "EA05"/"EA06" + u32 usize (big-endian) + an LZSS bit stream
(16-bit big-endian words, most significant bit first). An EA06 script is a token stream,
which ClamAV turns back into source text before scanning it (the ea06 "script" branch), and
so does `autoit`.

Rules
    1. `autoit(data)` returns the files it extracted, in order; damaged input raises
       ValueError or yields fewer — or partial, as ClamAV keeps them — files; never more
       than MAX_ITEMS files, each at most MAX_ITEM_OCTETS.
    2. Work is bounded whatever the data says: at most MAX_DECRYPT_OCTETS of one file's body
       and MAX_DECRYPT_TOTAL_OCTETS of all are decrypted (the EA06 generator runs in Python:
       its keystream, the same for every file, is kept once per process), and the LZSS
       decoder stops at the advertised size, at MAX_ITEM_OCTETS or when the bits run out.
"""

from __future__ import annotations

import random
import re
import struct

import numpy

__all__ = ["AUTOIT_MARKER", "AUTOIT_MAGIC", "autoit"]

MAX_ITEMS = 200                                   # the budget of core/scan/unpack.py
MAX_ITEM_OCTETS = 32 * 2**20
MAX_DECRYPT_OCTETS = 2 * 2**20                    # of one file's encrypted body
MAX_DECRYPT_TOTAL_OCTETS = 4 * 2**20              # of all of them

# ClamAV's filetype magic AUTOIT; the version digit ("5" or "6") is 23 octets in
AUTOIT_MARKER = bytes.fromhex("a3484bbe986c4aa9994c530a86d6487d")
AUTOIT_MAGIC = re.compile(re.escape(AUTOIT_MARKER) + rb"AU3!EA0([56])")
_SCRIPT_MARKER = b">>>AUTOIT SCRIPT<<<"
_M32 = 0xFFFFFFFF


class _Format:
    """The constants that differ between EA05 and EA06 (autoit.c ea05() / ea06())."""

    def __init__(self, version, file_magic, marker_key, name_key, size_key, unit,
                 body_magic, match_flag):
        self.version, self.file_magic = version, file_magic
        self.marker_key, self.name_key, self.size_key = marker_key, name_key, size_key
        self.unit = unit                          # octets per length unit (UTF-16 in EA06)
        self.body_magic, self.match_flag = body_magic, match_flag


_EA05 = _Format(5, 0xCEB06DFF, 0x29BC, 0x29AC, 0x45AA, 1, b"EA05", 1)
_EA06 = _Format(6, 0x52CA436B, 0xADBC, 0xF820, 0x87BC, 2, b"EA06", 0)


def autoit(data: bytes) -> list[bytes]:
    """The files of the first compiled AutoIt script in `data` (ValueError if none)."""
    try:
        return _autoit(data)
    except (struct.error, IndexError) as error:   # rule 1: damage is a ValueError
        raise ValueError(f"damaged AutoIt script: {error}") from None


def _autoit(data: bytes) -> list[bytes]:
    match = AUTOIT_MAGIC.search(data)
    if match is None:
        raise ValueError("no AutoIt script")
    form = _EA05 if match.group(1) == b"5" else _EA06
    at = match.end()
    if at + 16 > len(data):
        raise ValueError("short AutoIt header")
    seed = 0x22AF + sum(data[at:at + 16])         # EA05 only ("m4sum"); EA06 ignores it
    at += 16
    out: list[bytes] = []
    decrypt_room = MAX_DECRYPT_TOTAL_OCTETS
    while len(out) < MAX_ITEMS and decrypt_room > 0:
        if at + 8 > len(data) or struct.unpack_from("<I", data, at)[0] != form.file_magic:
            break                                 # "no FILE magic found, extraction complete"
        length = (struct.unpack_from("<I", data, at + 4)[0] ^ form.marker_key) * form.unit
        if length > 0x7FFFFFFF:
            break
        is_script = form.version == 6 and length == 2 * len(_SCRIPT_MARKER) and \
            _u2a(_lame_decrypt(data[at + 8:at + 8 + length],
                               length // 2 + 0xB33F)).startswith(_SCRIPT_MARKER)
        at += 8 + length
        if at + 4 > len(data):
            break
        length = (struct.unpack_from("<I", data, at)[0] ^ form.name_key) * form.unit
        if length > 0x7FFFFFFF:
            break
        at += 4 + length                          # the original name: not needed to scan
        if at + 13 > len(data):
            break
        compressed = data[at]
        csize = struct.unpack_from("<I", data, at + 1)[0] ^ form.size_key
        if csize > 0x7FFFFFFF:
            break                                 # "bad file size - giving up"
        at += 13 + 16
        if csize == 0:
            continue                              # "skipping empty file"
        if compressed == 1 and csize < 4 or at + csize > len(data):
            break                                 # too small, or a truncated file
        body = data[at:at + min(csize, MAX_DECRYPT_OCTETS, decrypt_room)]
        at += csize
        decrypt_room -= len(body)
        body = _mt_decrypt(body, seed) if form.version == 5 else _lame_decrypt(body, 0x2477)
        if compressed == 1:
            if body[:4] != form.body_magic:
                continue                          # "bad magic or unsupported version"
            body = _lzss(body, form.match_flag, csize)
        if len(body) < 4:
            continue                              # "file is too short"
        out.append(_decompile(body) if is_script else body)
    if not out:
        raise ValueError("no AutoIt files")
    return out


# --- keystreams --------------------------------------------------------------------------

def _mt_decrypt(body: bytes, seed: int) -> bytes:
    """XOR with MT19937 (init_genrand(seed)), one octet per output word: (word >> 1) & 0xff.
    ClamAV's MT_getnext is the reference generator, so CPython's own Mersenne Twister,
    primed with the same state, gives the same words."""
    if not body:
        return b""
    state = [seed & _M32]
    for i in range(1, 624):
        previous = state[-1]
        state.append((0x6C078965 * (previous ^ (previous >> 30)) + i) & _M32)
    generator = random.Random()
    generator.setstate((3, tuple(state) + (624,), None))
    words = generator.getrandbits(32 * len(body)).to_bytes(4 * len(body), "little")
    stream = (numpy.frombuffer(words, dtype="<u4") >> 1).astype(numpy.uint8)
    return (numpy.frombuffer(body, dtype=numpy.uint8) ^ stream).tobytes()


class _Lame:
    """ClamAV's LAME generator: 17 words seeded by seed = 1 - seed * 0x53A9B4FB, then
    x[t] = rol(x[t-17], 9) + rol(x[t-10], 13) (mod 2**32) — LAME_fpusht's c0/c1 walk down
    the ring 10 apart. After 9 warm-up steps each octet is the top octet of every second word
    (the double arithmetic of LAME_fpusht/LAME_getnext comes down to word >> 24).

    Ten consecutive words depend only on earlier ones, so they are computed together: a
    block is one integer of ten 64-bit lanes (a word per lane; shifts, masks and the sum
    never cross a lane)."""

    LANES = 10
    _LANE_MASK = sum(_M32 << (64 * i) for i in range(10))
    _LOW_THREE = (1 << 192) - 1

    def __init__(self, seed: int):
        words = []
        for _ in range(17):
            seed = (1 - seed * 0x53A9B4FB) & _M32
            words.append(seed)
        # y[i] = x[i - 17]: the word read at step t sits in words[(-t) mod 17]
        y = [words[(17 - i) % 17] for i in range(17)]
        for i in range(17, 30):
            a, b = y[i - 17], y[i - 10]
            y.append((((a << 9) | (a >> 23)) + ((b << 13) | (b >> 19))) & _M32)
        self.stream = bytearray([y[27] >> 24, y[29] >> 24])   # x[10], x[12]: after warm-up
        self.blocks = (self._pack(y[10:20]), self._pack(y[20:30]))

    @staticmethod
    def _pack(words) -> int:
        return sum(word << (64 * lane) for lane, word in enumerate(words))

    def extend(self, octets: int) -> None:
        """Append at least `octets` keystream octets (five per block of ten words)."""
        before, last = self.blocks
        mask, low = self._LANE_MASK, self._LOW_THREE
        parts = []
        for _ in range(-(-octets // 5)):
            # lanes 0-6 read x[t-17] from the block before last (lanes 3-9), 7-9 from the
            # last block (lanes 0-2); every lane reads x[t-10] from the last block
            far = (before >> 192) | ((last & low) << 448)
            block = ((((far << 9) | (far >> 23)) & mask)
                     + (((last << 13) | (last >> 19)) & mask)) & mask
            parts.append(block.to_bytes(80, "little"))
            before, last = last, block
        self.blocks = (before, last)
        words = numpy.frombuffer(b"".join(parts), dtype="<u8")
        self.stream += (words[1::2] >> 24).astype(numpy.uint8).tobytes()


_LAME_BY_SEED: dict[int, _Lame] = {}              # the body seed 0x2477: kept per process


def _lame_decrypt(body: bytes, seed: int) -> bytes:
    """XOR with the LAME keystream of a 16-bit seed (LAME_decrypt takes a uint16_t)."""
    seed &= 0xFFFF
    lame = _LAME_BY_SEED.get(seed) or _Lame(seed)
    if seed == 0x2477:
        _LAME_BY_SEED[seed] = lame
    if len(lame.stream) < len(body):
        lame.extend(len(body) - len(lame.stream))
    stream = numpy.frombuffer(bytes(lame.stream[:len(body)]), dtype=numpy.uint8)
    return (numpy.frombuffer(body, dtype=numpy.uint8) ^ stream).tobytes()


# --- the LZSS bit stream -----------------------------------------------------------------

def _lzss(body: bytes, match_flag: int, csize: int) -> bytes:
    """Decompress "EA0x" + u32 usize (big-endian) + bits. A flag bit equal to `match_flag`
    (1 in EA05, 0 in EA06) starts <15-bit distance><length, 2/3/5/8/8... bits>, the other
    value an 8-bit literal. On damage the output so far is kept (autoit.c: "partial file
    may exist")."""
    if len(body) < 8:
        return b""
    size = min(struct.unpack_from(">I", body, 4)[0] or csize, MAX_ITEM_OCTETS)
    words = body[8:8 + (len(body) - 8) // 2 * 2]  # read in 16-bit words: an odd last octet
    if not words:                                  # is never read
        return b""
    bits = bin(int.from_bytes(words, "big"))[2:].zfill(8 * len(words))
    end, at, out = len(bits), 0, bytearray()
    match = "1" if match_flag else "0"
    flags = [bits[phase::9] for phase in range(9)]   # literal runs found at C speed
    while len(out) < size and at + 9 <= end:
        if bits[at] != match:
            first = at // 9
            run = flags[at % 9].find(match, first, first + size - len(out))
            count = (run if run >= 0 else min(len(flags[at % 9]), first + size - len(out)))\
                - first
            count = min(count, (end - at) // 9)
            if count < 4:
                out.append(int(bits[at + 1:at + 9], 2))
                at += 9
                continue
            cells = numpy.frombuffer(bits[at:at + 9 * count].encode(), dtype=numpy.uint8)
            out += numpy.packbits(cells.reshape(count, 9)[:, 1:] - 48, axis=1).tobytes()
            at += 9 * count
            continue
        if at + 18 > end:
            break
        distance, length = int(bits[at + 1:at + 16], 2), int(bits[at + 16:at + 18], 2)
        at += 18
        if length == 3:                           # all ones: the next field adds to it
            for width in (3, 5, 8, 8):
                if at + width > end:
                    return bytes(out)             # "not enough bits available"
                more = int(bits[at:at + width], 2)
                at += width
                length += more
                if more != (1 << width) - 1:
                    break
            else:                                 # 3+7+31+255 and on: more 8-bit fields
                while more == 255:                # while the last was 255
                    zero = bits.find("0", at)     # (whole runs of 255 skipped at once)
                    runs = ((zero if zero >= 0 else end) - at) // 8
                    length += 255 * runs
                    at += 8 * runs
                    if at + 8 > end:
                        return bytes(out)
                    more = int(bits[at:at + 8], 2)
                    at += 8
                    length += more
        length += 3
        start = len(out) - distance
        if start < 0 or len(out) + length > size:
            break
        if distance == 0:                         # ClamAV copies a cell onto itself
            out += bytes(length)
        elif distance >= length:
            out += out[start:start + length]
        else:                                     # overlapping: the last `distance` repeat
            out += (out[start:] * (length // distance + 1))[:length]
    return bytes(out)


# --- EA06 scripts: tokens back to text (autoit.c ea06, "script" branch) --------------------

_KEYWORDS = (
    "UNKNOWN_0 AND OR NOT IF THEN ELSE ELSEIF ENDIF WHILE WEND DO UNTIL FOR NEXT TO STEP IN "
    "EXITLOOP CONTINUELOOP SELECT CASE ENDSELECT SWITCH ENDSWITCH CONTINUECASE DIM REDIM "
    "LOCAL GLOBAL CONST STATIC FUNC ENDFUNC RETURN EXIT BYREF WITH ENDWITH TRUE FALSE DEFAULT "
    "NULL UNKNOWN_43 ENUM").split()
_FUNCTIONS = (
    "ABS ACOS ADLIBREGISTER ADLIBUNREGISTER ASC ASCW ASIN ASSIGN ATAN AUTOITSETOPTION "
    "AUTOITWINGETTITLE AUTOITWINSETTITLE BEEP BINARY BINARYLEN BINARYMID BINARYTOSTRING BITAND "
    "BITNOT BITOR BITROTATE BITSHIFT BITXOR BLOCKINPUT BREAK CALL CDTRAY CEILING CHR CHRW "
    "CLIPGET CLIPPUT CONSOLEREAD CONSOLEWRITE CONSOLEWRITEERROR CONTROLCLICK CONTROLCOMMAND "
    "CONTROLDISABLE CONTROLENABLE CONTROLFOCUS CONTROLGETFOCUS CONTROLGETHANDLE CONTROLGETPOS "
    "CONTROLGETTEXT CONTROLHIDE CONTROLLISTVIEW CONTROLMOVE CONTROLSEND CONTROLSETTEXT "
    "CONTROLSHOW CONTROLTREEVIEW COS DEC DIRCOPY DIRCREATE DIRGETSIZE DIRMOVE DIRREMOVE DLLCALL "
    "DLLCALLADDRESS DLLCALLBACKFREE DLLCALLBACKGETPTR DLLCALLBACKREGISTER DLLCLOSE DLLOPEN "
    "DLLSTRUCTCREATE DLLSTRUCTGETDATA DLLSTRUCTGETPTR DLLSTRUCTGETSIZE DLLSTRUCTSETDATA "
    "DRIVEGETDRIVE DRIVEGETFILESYSTEM DRIVEGETLABEL DRIVEGETSERIAL DRIVEGETTYPE DRIVEMAPADD "
    "DRIVEMAPDEL DRIVEMAPGET DRIVESETLABEL DRIVESPACEFREE DRIVESPACETOTAL DRIVESTATUS ENVGET "
    "ENVSET ENVUPDATE EVAL EXECUTE EXP FILECHANGEDIR UNKNOWN_89 FILECLOSE FILECOPY "
    "FILECREATENTFSLINK FILECREATESHORTCUT FILEDELETE FILEEXISTS FILEFINDFIRSTFILE "
    "FILEFINDNEXTFILE FILEFLUSH FILEGETATTRIB FILEGETENCODING FILEGETLONGNAME FILEGETPOS "
    "FILEGETSHORTCUT FILEGETSHORTNAME FILEGETSIZE FILEGETTIME FILEGETVERSION FILEINSTALL "
    "FILEMOVE FILEOPEN FILEOPENDIALOG FILEREAD FILEREADLINE FILEREADTOARRAY FILERECYCLE "
    "FILERECYCLEEMPTY FILESAVEDIALOG FILESELECTFOLDER FILESETATTRIB FILESETEND FILESETPOS "
    "FILESETTIME FILEWRITE FILEWRITELINE FLOOR FTPSETPROXY FUNCNAME GUICREATE GUICTRLCREATEAVI "
    "GUICTRLCREATEBUTTON GUICTRLCREATECHECKBOX GUICTRLCREATECOMBO GUICTRLCREATECONTEXTMENU "
    "GUICTRLCREATEDATE GUICTRLCREATEDUMMY GUICTRLCREATEEDIT GUICTRLCREATEGRAPHIC "
    "GUICTRLCREATEGROUP GUICTRLCREATEICON GUICTRLCREATEINPUT GUICTRLCREATELABEL "
    "GUICTRLCREATELIST GUICTRLCREATELISTVIEW GUICTRLCREATELISTVIEWITEM GUICTRLCREATEMENU "
    "GUICTRLCREATEMENUITEM GUICTRLCREATEMONTHCAL GUICTRLCREATEOBJ GUICTRLCREATEPIC "
    "GUICTRLCREATEPROGRESS GUICTRLCREATERADIO GUICTRLCREATESLIDER GUICTRLCREATETAB "
    "GUICTRLCREATETABITEM GUICTRLCREATETREEVIEW GUICTRLCREATETREEVIEWITEM GUICTRLCREATEUPDOWN "
    "GUICTRLDELETE GUICTRLGETHANDLE GUICTRLGETSTATE GUICTRLREAD GUICTRLRECVMSG "
    "GUICTRLREGISTERLISTVIEWSORT GUICTRLSENDMSG GUICTRLSENDTODUMMY GUICTRLSETBKCOLOR "
    "GUICTRLSETCOLOR GUICTRLSETCURSOR GUICTRLSETDATA GUICTRLSETDEFBKCOLOR GUICTRLSETDEFCOLOR "
    "GUICTRLSETFONT GUICTRLSETGRAPHIC GUICTRLSETIMAGE GUICTRLSETLIMIT GUICTRLSETONEVENT "
    "GUICTRLSETPOS GUICTRLSETRESIZING GUICTRLSETSTATE GUICTRLSETSTYLE GUICTRLSETTIP GUIDELETE "
    "GUIGETCURSORINFO GUIGETMSG GUIGETSTYLE GUIREGISTERMSG GUISETACCELERATORS GUISETBKCOLOR "
    "GUISETCOORD GUISETCURSOR GUISETFONT GUISETHELP GUISETICON GUISETONEVENT GUISETSTATE "
    "GUISETSTYLE GUISTARTGROUP GUISWITCH HEX HOTKEYSET HTTPSETPROXY HTTPSETUSERAGENT HWND "
    "INETCLOSE INETGET INETGETINFO INETGETSIZE INETREAD INIDELETE INIREAD INIREADSECTION "
    "INIREADSECTIONNAMES INIRENAMESECTION INIWRITE INIWRITESECTION INPUTBOX INT ISADMIN "
    "ISARRAY ISBINARY ISBOOL ISDECLARED ISDLLSTRUCT ISFLOAT ISFUNC ISHWND ISINT ISKEYWORD "
    "UNKNOWN_229 ISNUMBER ISOBJ ISPTR ISSTRING LOG MEMGETSTATS UNKNOWN_235 UNKNOWN_236 "
    "UNKNOWN_237 UNKNOWN_238 MOD MOUSECLICK MOUSECLICKDRAG MOUSEDOWN MOUSEGETCURSOR MOUSEGETPOS "
    "MOUSEMOVE MOUSEUP MOUSEWHEEL MSGBOX NUMBER OBJCREATE OBJCREATEINTERFACE OBJEVENT OBJGET "
    "OBJNAME ONAUTOITEXITREGISTER ONAUTOITEXITUNREGISTER OPT PING PIXELCHECKSUM PIXELGETCOLOR "
    "PIXELSEARCH PROCESSCLOSE PROCESSEXISTS PROCESSGETSTATS PROCESSLIST PROCESSSETPRIORITY "
    "PROCESSWAIT PROCESSWAITCLOSE PROGRESSOFF PROGRESSON PROGRESSSET PTR RANDOM REGDELETE "
    "REGENUMKEY REGENUMVAL REGREAD REGWRITE ROUND RUN RUNAS RUNASWAIT RUNWAIT SEND "
    "SENDKEEPACTIVE SETERROR SETEXTENDED SHELLEXECUTE SHELLEXECUTEWAIT SHUTDOWN SIN SLEEP "
    "SOUNDPLAY SOUNDSETWAVEVOLUME SPLASHIMAGEON SPLASHOFF SPLASHTEXTON SQRT SRANDOM "
    "STATUSBARGETTEXT STDERRREAD STDINWRITE STDIOCLOSE STDOUTREAD STRING STRINGADDCR "
    "STRINGCOMPARE STRINGFORMAT STRINGFROMASCIIARRAY STRINGINSTR STRINGISALNUM STRINGISALPHA "
    "STRINGISASCII STRINGISDIGIT STRINGISFLOAT STRINGISINT STRINGISLOWER STRINGISSPACE "
    "STRINGISUPPER STRINGISXDIGIT STRINGLEFT STRINGLEN STRINGLOWER STRINGMID STRINGREGEXP "
    "STRINGREGEXPREPLACE STRINGREPLACE STRINGREVERSE STRINGRIGHT STRINGSPLIT STRINGSTRIPCR "
    "STRINGSTRIPWS STRINGTOASCIIARRAY STRINGTOBINARY STRINGTRIMLEFT STRINGTRIMRIGHT "
    "STRINGUPPER TAN TCPACCEPT TCPCLOSESOCKET TCPCONNECT TCPLISTEN TCPNAMETOIP TCPRECV TCPSEND "
    "TCPSHUTDOWN, TCPSTARTUP, TIMERDIFF TIMERINIT TOOLTIP TRAYCREATEITEM TRAYCREATEMENU "
    "TRAYGETMSG TRAYITEMDELETE TRAYITEMGETHANDLE TRAYITEMGETSTATE TRAYITEMGETTEXT "
    "TRAYITEMSETONEVENT TRAYITEMSETSTATE TRAYITEMSETTEXT TRAYSETCLICK TRAYSETICON "
    "TRAYSETONEVENT TRAYSETPAUSEICON TRAYSETSTATE TRAYSETTOOLTIP TRAYTIP UBOUND UDPBIND "
    "UDPCLOSESOCKET UDPOPEN UDPRECV UDPSEND UNKNOWN_375 UNKNOWN_376 VARGETTYPE WINACTIVATE "
    "WINACTIVE WINCLOSE WINEXISTS WINFLASH WINGETCARETPOS WINGETCLASSLIST WINGETCLIENTSIZE "
    "WINGETHANDLE WINGETPOS WINGETPROCESS WINGETSTATE WINGETTEXT WINGETTITLE WINKILL WINLIST "
    "WINMENUSELECTITEM WINMINIMIZEALL WINMINIMIZEALLUNDO WINMOVE WINSETONTOP WINSETSTATE "
    "WINSETTITLE WINSETTRANS WINWAIT WINWAITACTIVE WINWAITCLOSE WINWAITNOTACTIVE").split()
_PREFIXES = (b"", b"", b"@", b"$", b"", b".", b"\"", b"#")          # ops 0x30..0x37
_OPERATORS = (",", "=", ">", "<", "<>", ">=", "<=", "(", ")", "+", "-", "/", "*", "&", "[",
              "]", "==", "^", "+=", "-=", "/=", "*=", "&=", "?", ":")  # ops 0x40..0x58


def _u2a(data: bytes) -> bytes:
    """ClamAV's u2a: UTF-16LE to single octets when the buffer looks like UTF-16 (a BOM, or
    at least a quarter of the first ten units being <non-zero, zero>); else unchanged."""
    if len(data) < 2:
        return data
    if len(data) > 4 and data[0] == 0xFF and data[1] == 0xFE and data[2]:
        return data[2::2]
    head = data[:20] if len(data) > 20 else data[:len(data) & ~1]
    units = sum(1 for i in range(0, len(head), 2) if head[i] and not head[i + 1])
    if units * 4 < len(head):
        return data
    return data[0:len(data) & ~1:2]


def _decompile(tokens: bytes) -> bytes:
    """An EA06 script's tokens as text: keywords, functions, numbers, names and strings
    separated by spaces, one line per 0x7f. A bad token ends the text there ("decompilation
    aborted - partial script may exist")."""
    size = len(tokens)
    lines = struct.unpack_from("<I", tokens, 0)[0]
    at, out = 4, bytearray()
    while lines and at < size:
        op = tokens[at]
        at += 1
        if op in (0, 1):                          # keyword or function by number
            names = _KEYWORDS if op == 0 else _FUNCTIONS
            if at >= size - 4:
                break
            number = struct.unpack_from("<I", tokens, at)[0]
            if number >= len(names):
                break
            at += 4
            out += names[number].encode() + b" "
        elif op == 5:                             # int32
            if at >= size - 4:
                break
            out += b"0x%08x " % struct.unpack_from("<I", tokens, at)[0]
            at += 4
        elif op in (0x10, 0x20):                  # int64, double
            if size < 8 or at >= size - 8:
                break
            if op == 0x10:
                out += b"0x%016x " % struct.unpack_from("<Q", tokens, at)[0]
            else:
                out += b"%g " % struct.unpack_from("<d", tokens, at)[0]
            at += 8
        elif 0x30 <= op <= 0x37:                  # construct, command, macro, variable, ...
            if at >= size - 4:
                break
            chars = struct.unpack_from("<I", tokens, at)[0]
            octets = (chars * 2) & _M32
            at += 4
            if size < octets or at >= size - octets:
                break
            out += _PREFIXES[op - 0x30]
            if chars:
                key = bytes((chars & 0xFF, (chars >> 8) & 0xFF)) * chars
                text = bytearray(a ^ b for a, b in zip(tokens[at:at + octets], key))
                converted = _u2a(bytes(text))
                text[:len(converted)] = converted
                out += text[:chars]
                at += octets
            if op == 0x36:
                out += b"\""
            if op != 0x34:
                out += b" "
        elif 0x40 <= op <= 0x58:
            out += _OPERATORS[op - 0x40].encode() + b" "
        elif op == 0x7F:
            lines -= 1
            out += b"\n"
        else:                                     # "found unknown op"
            break
    return bytes(out)
