#!/usr/bin/env python3
"""Writes the byte-level ingest fixtures that cannot be typed by hand:
encrypted.pdf (a standard-security-handler PDF whose empty user password does
not open it), corrupt.pdf, image.png (PNG magic), nul.txt (text with NUL bytes),
invalid_utf8.txt and latin1.html. Usage: make_binary_fixtures.py OUTDIR"""
import os
import sys

out = sys.argv[1]


def pdf(objs, trailer_extra):
    body = b"%PDF-1.4\n"
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(body))
        body += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offs:
        body += b"%010d 00000 n \n" % o
    body += b"trailer\n<< /Size %d /Root 1 0 R " % (len(objs) + 1) + trailer_extra + b" >>\n"
    body += b"startxref\n%d\n%%%%EOF\n" % xref
    return body


# Encrypted: O and U entries that no password reproduces.
enc = pdf(
    [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <" + b"41" * 32 + b"> /U <" + b"42" * 32 + b"> /P -4 >>",
    ],
    b"/Encrypt 4 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]",
)
open(os.path.join(out, "encrypted.pdf"), "wb").write(enc)
open(os.path.join(out, "corrupt.pdf"), "wb").write(b"%PDF-1.4\nthis is not a PDF body\n%%EOF\n")
open(os.path.join(out, "image.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
open(os.path.join(out, "nul.txt"), "wb").write(b"looks like text\x00but has a NUL byte\n")
# a\xC3( : truncated 2-byte sequence; \xFF : never valid; \xED\xA0\x80 : a
# UTF-16 surrogate (3 maximal subparts); \xF0\x9F\x98 : truncated 4-byte.
open(os.path.join(out, "invalid_utf8.txt"), "wb").write(
    b"Bad a\xc3( here.\n\nNever \xff valid.\n\nSurrogate \xed\xa0\x80 end.\n\nCut \xf0\x9f\x98 emoji.\n"
)
open(os.path.join(out, "latin1.html"), "wb").write(
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
    b"<title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e \xe0 la carte.</p></body></html>\n"
)
