"""render_report.py - an HTML report of `medvlm ... --report` in headless Chromium, to PNG.

  python render_report.py REPORT.html OUT.png

Opens the file (file://, nothing else reachable), checks the page logged no error, holds its
SVG charts and that every embedded thumbnail decoded, saves a screenshot of the whole page and
checks the PNG is not blank: decoded here (zlib, PNG filters), at least 2 % of its pixels differ
from the background and it has more than 50 distinct colours. Exits 1 on failure.
"""

import os
import struct
import sys
import zlib

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def fail(msg):
    print("FAIL " + msg, flush=True)
    sys.exit(1)


def decode_png(path):
    """(width, height, channels, rows of bytes) of an 8-bit, non-interlaced RGB(A) PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("%s is not a PNG" % path)
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        fail("unexpected PNG format (depth %d, colour type %d)" % (depth, ctype))
    ch = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * ch
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b = prev[i]
            c = prev[i - ch] if i >= ch else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, ch, rows


def main():
    report, out = sys.argv[1:3]
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--window-size=1100,900", "--host-resolver-rules=MAP * ~NOTFOUND",
              "--proxy-server=direct://"):
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(60)
    try:
        drv.get("file://" + os.path.abspath(report))
        errs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        if errs:
            fail("the report logged errors: %s" % errs)
        n_svg = drv.execute_script("return document.querySelectorAll('svg').length")
        imgs = drv.execute_script(
            "return [...document.images].map(i => [i.complete && i.naturalWidth > 0, i.alt])")
        if n_svg < 1:
            fail("no SVG chart in the report")
        bad = [alt for good, alt in imgs if not good]
        if bad:
            fail("thumbnails that did not decode: %s" % bad)
        # the whole page in one screenshot
        height = drv.execute_script("return document.documentElement.scrollHeight")
        drv.set_window_size(1100, min(max(height + 100, 600), 8000))
        drv.save_screenshot(out)
    finally:
        drv.quit()
    w, h, ch, rows = decode_png(out)
    bg = rows[0][:3]
    total = differ = 0
    colours = set()
    for y in range(0, h, 2):
        r = rows[y]
        for x in range(0, w * ch, 2 * ch):
            px = r[x : x + 3]
            total += 1
            differ += px != bg
            if len(colours) <= 50:
                colours.add(px)
    frac = differ / total
    if frac < 0.02 or len(colours) <= 50:
        fail("%s looks blank: %.1f %% of the pixels differ from the background, %d colours"
             % (out, 100 * frac, len(colours)))
    print("ok   %s rendered to %s (%d x %d): %d SVG charts, %d thumbnails, %.1f %% of the pixels "
          "drawn" % (report, out, w, h, n_svg, len(imgs), 100 * frac), flush=True)


if __name__ == "__main__":
    main()
