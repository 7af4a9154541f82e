#!/usr/bin/env python3
"""Write the small test PDFs of runtime/tests/fixtures/pdf/ from raw PDF syntax (no libraries).

Why hand-written: the tests must not depend on LibreOffice/poppler/qpdf at test time, and a
generator that is 200 lines of plain Python shows exactly what each file contains. Rerun with
    python3 quant-tests/scripts/make_test_pdfs.py
(deterministic: the same bytes every time). The embedded JPEG is the golden test image
quant-tests/fixtures/golden/images/square_448x448.jpg.

Good files: text (Letter, standard fonts), shapes (A4 vector paths), jpeg (A4 with a DCTDecode
image), rotated (A4 /Rotate 90), three_pages, two_pages, encrypted_nopw (RC4-40 with an empty
user password: opens without a password), many_pages (40 pages, over the default limit of 32), six_pages (six A4 invoice pages: 42 tiles
at max 6 tiles, more than the 8192-token context holds).
Bad files: truncated (first half of text.pdf), encrypted (user password "secret"), zero_pages,
huge_mediabox (10^6 pt square page).
"""
import hashlib
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "..", "..", "runtime", "tests", "fixtures", "pdf")
JPEG = os.path.join(ROOT, "..", "fixtures", "golden", "images", "square_448x448.jpg")

LETTER = (612, 792)
A4 = (595, 842)


def build(objects, trailer_extra=b"", encrypt=None):
    """objects: list of bytes (object bodies, numbered from 1). encrypt(num, data) -> data for
    streams is applied by the caller. Returns the whole file with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra + b">>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def stream(content, extra=b"", compress=True):
    data = zlib.compress(content, 9) if compress else content
    filt = b"/Filter /FlateDecode " if compress else b""
    return b"<< /Length %d " % len(data) + filt + extra + b">>\nstream\n" + data + b"\nendstream"


def doc(pages, fonts=True, xobjects=None):
    """pages: list of (width, height, content bytes, extra page-dict bytes). One shared
    resource dict (fonts F1 Helvetica, F2 Times-Bold, F3 Courier; optional XObjects)."""
    n = len(pages)
    # 1 catalog, 2 pages, 3 resources, 4.. fonts, then per page: page, content
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", None, None]
    font_ids = []
    for base in [b"Helvetica", b"Times-Bold", b"Courier"] if fonts else []:
        objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /" + base + b" /Encoding /WinAnsiEncoding >>")
        font_ids.append(len(objs))
    xo = b""
    for name, body in (xobjects or {}).items():
        objs.append(body)
        xo += b"/" + name + b" %d 0 R " % len(objs)
    fonts_dict = b" ".join(b"/F%d %d 0 R" % (k + 1, fid) for k, fid in enumerate(font_ids))
    objs[2] = b"<< /Font << " + fonts_dict + b" >> /XObject << " + xo + b">> >>"
    kids = []
    for (w, h, content, extra) in pages:
        page_id = len(objs) + 1
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources 3 0 R /Contents %d 0 R " % (w, h, page_id + 1) + extra + b">>")
        objs.append(stream(content))
        kids.append(b"%d 0 R" % page_id)
    objs[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % n
    return objs


def text_page(w, h, title, lines):
    c = b"BT /F2 28 Tf 72 %d Td (" % (h - 100) + title + b") Tj ET\n"
    y = h - 150
    for k, line in enumerate(lines):
        font = [b"/F1 14", b"/F3 12"][k % 2]
        c += b"BT " + font + b" Tf 72 %d Td (" % y + line + b") Tj ET\n"
        y -= 24
    return c


INVOICE = [
    b"Invoice number: INV-2024-0117",
    b"Date: 12 March 2024",
    b"Bill to: Ada Lovelace, 12 Analytical Row, London",
    b"Item                     Qty     Price",
    b"Widget, large             3     19.99",
    b"Gizmo with cable          1    149.00",
    b"Total due:                     208.97",
]


def shapes_content():
    c = b"0.9 0.1 0.1 rg 72 600 200 120 re f\n"                # red filled rectangle
    c += b"0 0 0 RG 4 w 320 600 200 120 re S\n"                 # black stroked rectangle
    c += b"0.1 0.4 0.9 rg 0 0 0.5 RG 2 w\n"                     # blue disc (4 beziers)
    cx, cy, r, k = 200, 350, 100, 0.5523 * 100
    c += b"%d %d m " % (cx + r, cy)
    c += b"%.2f %.2f %.2f %.2f %d %d c " % (cx + r, cy + k, cx + k, cy + r, cx, cy + r)
    c += b"%.2f %.2f %.2f %.2f %d %d c " % (cx - k, cy + r, cx - r, cy + k, cx - r, cy)
    c += b"%.2f %.2f %.2f %.2f %d %d c " % (cx - r, cy - k, cx - k, cy - r, cx, cy - r)
    c += b"%.2f %.2f %.2f %.2f %d %d c B\n" % (cx + k, cy - r, cx + r, cy - k, cx + r, cy)
    c += b"0 0.6 0.2 rg 380 250 m 520 250 l 450 450 l h f\n"    # green triangle
    c += b"0 0 0 RG 1 w " + b"".join(b"72 %d m 523 %d l S " % (100 + 8 * i, 160 - 4 * i) for i in range(10)) + b"\n"
    return c


def rc4(key, data):
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for b in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(b ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def encrypted(user_pw, owner_pw):
    """Standard security handler, V1 R2 (RC4 40-bit), PDF 1.7 algorithms 2, 3, 4."""
    file_id = hashlib.md5(b"h2ovl test pdf " + user_pw).digest()
    okey = hashlib.md5((owner_pw + PAD)[:32]).digest()[:5]
    o = rc4(okey, (user_pw + PAD)[:32])
    p = -44  # print + copy allowed, as a signed 32-bit value
    key = hashlib.md5((user_pw + PAD)[:32] + o + struct.pack("<i", p) + file_id).digest()[:5]
    u = rc4(key, PAD)
    pages = [(A4[0], A4[1], text_page(A4[0], A4[1], b"Encrypted document", INVOICE[:3]), b"")]
    objs = doc(pages)
    # Encrypt every stream with its object key (algorithm 1); this file has no strings outside streams.
    for num, body in enumerate(objs, start=1):
        if b"stream\n" in body:
            head, rest = body.split(b"stream\n", 1)
            data = rest[: -len(b"\nendstream")]
            okey_n = hashlib.md5(key + struct.pack("<i", num)[:3] + b"\x00\x00").digest()[:10]
            objs[num - 1] = head + b"stream\n" + rc4(okey_n, data) + b"\nendstream"
    objs.append(b"<< /Filter /Standard /V 1 /R 2 /O <" + o.hex().encode() + b"> /U <" + u.hex().encode() + b"> /P %d >>" % p)
    enc_id = len(objs)
    fid = file_id.hex().encode()
    return build(objs, trailer_extra=b"/Encrypt %d 0 R /ID [<%s> <%s>] " % (enc_id, fid, fid))


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    files["text.pdf"] = build(doc([(LETTER[0], LETTER[1], text_page(LETTER[0], LETTER[1], b"INVOICE", INVOICE), b"")]))
    files["shapes.pdf"] = build(doc([(A4[0], A4[1], shapes_content(), b"")], fonts=False))
    jpeg = open(JPEG, "rb").read()
    img = b"<< /Type /XObject /Subtype /Image /Width 448 /Height 448 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % len(jpeg) + jpeg + b"\nendstream"
    jcontent = b"q 448 0 0 448 73 300 cm /Im1 Do Q\n"
    jcontent += b"BT /F1 14 Tf 73 260 Td (The picture above is an embedded JPEG.) Tj ET\n"
    files["jpeg.pdf"] = build(doc([(A4[0], A4[1], jcontent, b"")], xobjects={b"Im1": img}))
    rot = text_page(A4[0], A4[1], b"Rotated page", [b"This page has /Rotate 90.", b"Read it turned clockwise."])
    rot += b"0.8 0.2 0.2 rg 72 100 m 300 100 l 300 80 l 340 110 l 300 140 l 300 120 l 72 120 l h f\n"
    files["rotated.pdf"] = build(doc([(A4[0], A4[1], rot, b"/Rotate 90 ")]))
    three = []
    for k in range(1, 4):
        c = b"BT /F2 200 Tf 220 400 Td (%d) Tj ET\n" % k
        c += text_page(A4[0], A4[1], b"Page %d of 3" % k, [b"Section %d: results and discussion." % k])
        c += b"%.1f 0.3 0.6 rg 72 100 %d 60 re f\n" % (0.3 * k, 120 * k)
        three.append((A4[0], A4[1], c, b""))
    files["three_pages.pdf"] = build(doc(three))
    files["two_pages.pdf"] = build(doc(three[:2]))
    # Six A4 invoice pages (issue 23): 42 tiles at max 6, over the 8192-token context together.
    six = []
    for k in range(1, 7):
        lines = [b"Item %d.%d: service, 1 x %d.00 EUR" % (k, i, 10 * k + i) for i in range(1, 6)]
        lines.append(b"Page total: %d.00 EUR" % sum(10 * k + i for i in range(1, 6)))
        six.append((A4[0], A4[1], text_page(A4[0], A4[1], b"Invoice 2024-117, page %d of 6" % k, lines), b""))
    files["six_pages.pdf"] = build(doc(six))
    files["many_pages.pdf"] = build(doc([(200, 200, b"BT /F1 40 Tf 40 80 Td (%d) Tj ET\n" % k, b"") for k in range(1, 41)]))
    files["encrypted_nopw.pdf"] = encrypted(b"", b"owner-secret")
    files["encrypted.pdf"] = encrypted(b"secret", b"owner-secret")
    files["truncated.pdf"] = files["text.pdf"][: len(files["text.pdf"]) // 2]
    files["zero_pages.pdf"] = build([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    files["huge_mediabox.pdf"] = build(doc([(1000000, 1000000, b"0 0 1 rg 0 0 500000 500000 re f\n", b"")], fonts=False))
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
