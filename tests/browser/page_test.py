"""page_test.py - the page of `medvlm serve` in headless Chromium (selenium + chromedriver).

  python page_test.py URL TILE PREDICTIONS.csv FEATURES.safetensors TEXT_EMBEDS.safetensors
                      QUERY K SCREENSHOT.png [TOKEN_URL TOKEN]

Loads the page from URL, uploads TILE through the file input and reads the class
probabilities back from the bars (each row's data-p); they must equal TILE's row of
PREDICTIONS.csv (`medvlm zeroshot --predictions`). Then searches for QUERY: the thumbnails
must be the K tiles of FEATURES nearest to QUERY's embedding (TEXT_EMBEDS, `medvlm embed
--prompts`), in order, each one loaded from /api/tile/{its index}; a click on the first gives
its neighbours. Prompts edited in the page give the API's answer for those prompts. Saves a
screenshot. With TOKEN_URL (a server started with --token TOKEN): the page asks for the token,
and with it loads and shows thumbnails (fetched with the token). Prints one line per check; exits 1 on the
first failure, naming what differed. Chromium resolves no host but the loopback address.
"""

import csv
import json
import math
import os
import struct
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 60  # seconds for any one wait
ATOL = 1e-4  # the page's probabilities against the CLI's (float32 both, same bits expected)
STOL = 1e-5  # cosine similarities closer than this may come in either order (float32 sums)


def fail(msg):
    print("FAIL " + msg, flush=True)
    sys.exit(1)


def ok(msg):
    print("ok   " + msg, flush=True)


def read_safetensors(path):
    """name -> (shape, list of floats) for F32 tensors; the metadata dict."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        b, e = t["data_offsets"]
        count = (e - b) // 4
        out[name] = (t["shape"], struct.unpack_from("<%df" % count, data, base + b))
    return out, header.get("__metadata__", {})


def rows(shape, flat):
    d = shape[-1]
    return [flat[i * d : (i + 1) * d] for i in range(len(flat) // d)]


def unit(v):
    s = math.sqrt(sum(x * x for x in v))
    return [x / s for x in v]


def ranking_ok(got, scores, k):
    """got (indices, as shown) is a top-k ranking of scores: the tile at each place scores the
    place's score, up to STOL (near-ties may swap), and no tile is shown twice."""
    best = sorted(scores, reverse=True)[:k]
    return (len(got) == len(best) and len(set(got)) == len(got)
            and all(abs(scores[i] - b) <= STOL for i, b in zip(got, best)))


def post(url, body):
    """POST JSON to the loopback server; the decoded answer."""
    if not url.startswith("http://127.0.0.1:"):
        fail("refusing to request %s: loopback only" % url)
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return json.loads(r.read())


def main():
    url, tile, pred_csv, feats_path, text_path, query, k, shot = sys.argv[1:9]
    token_url, token = (sys.argv[9], sys.argv[10]) if len(sys.argv) > 10 else (None, None)
    k = int(k)
    name = os.path.basename(tile)

    # the oracles: the CLI's probabilities of the tile, and the tiles nearest to the query
    with open(pred_csv, newline="") as f:
        table = list(csv.reader(f))
    head = table[0]
    want_row = next((r for r in table[1:] if r[0] == name), None)
    if want_row is None:
        fail("%s is not in %s" % (name, pred_csv))
    classes = [h[2:] for h in head if h.startswith("p_")]
    if not classes:  # the header names the probability columns after the classes
        classes = head[3:]
    want_p = [float(x) for x in want_row[3 : 3 + len(classes)]]
    feats, meta = read_safetensors(feats_path)
    names = json.loads(meta["image_names"])
    X = [unit(r) for r in rows(*feats["features"])]
    text, _ = read_safetensors(text_path)
    q = unit(rows(*text["text_embeds"])[0])
    scores = [sum(a * b for a, b in zip(x, q)) for x in X]
    order = sorted(range(len(X)), key=lambda i: (-scores[i], i))[:k]
    want_tiles = [(i, names[i]) for i in order]

    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--window-size=1280,1000",
        # nothing but the loopback server is reachable from the page
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=direct://",
    ):
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(TIMEOUT)
    drv.set_script_timeout(TIMEOUT)
    try:
        wait = WebDriverWait(drv, TIMEOUT)
        drv.get(url + "/")
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        ok("page loaded, /api/info read (%s)" % drv.find_element(By.ID, "model").text)
        errs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        if errs:
            fail("the page logged errors: %s" % errs)

        # upload the tile; wait for the bars
        drv.find_element(By.ID, "file").send_keys(os.path.abspath(tile))
        wait.until(
            lambda d: d.execute_script("return document.body.dataset.classified") is not None
            or d.find_element(By.ID, "zs-error").text
        )
        err = drv.find_element(By.ID, "zs-error").text
        if err:
            fail("zero-shot: the page shows an error: %s" % err)
        bars = drv.find_elements(By.CSS_SELECTOR, "#probs .prob")
        got = [(b.get_attribute("data-class"), float(b.get_attribute("data-p"))) for b in bars]
        if [c for c, _ in got] != classes:
            fail("zero-shot: classes %s, want %s" % ([c for c, _ in got], classes))
        diff = max(abs(p - w) for (_, p), w in zip(got, want_p))
        if diff > ATOL:
            fail("zero-shot: page %s, medvlm zeroshot %s (max diff %.3g)"
                 % ([p for _, p in got], want_p, diff))
        ok("zero-shot of %s: the page's probabilities = medvlm zeroshot's (max diff %.2g)"
           % (name, diff))
        shown = [b.find_element(By.CSS_SELECTOR, ".val").text for b in bars]
        if shown != ["%.1f %%" % (100 * p) for p in want_p]:
            fail("zero-shot: the bars read %s" % shown)
        best = drv.find_element(By.CSS_SELECTOR, "#probs .prob.best").get_attribute("data-class")
        if best != classes[max(range(len(classes)), key=lambda i: (want_p[i], -i))]:
            fail("zero-shot: the highlighted class is %s" % best)
        ok("bars: %s" % ", ".join("%s %s" % (c, s) for (c, _), s in zip(got, shown)))

        # edited prompts: the bars are the API's answer for the prompts the editor holds
        drv.find_element(By.CSS_SELECTOR, "#classify summary").click()
        drv.execute_script(
            "document.getElementById('classes').value = arguments[0];"
            "document.getElementById('templates').value = arguments[1];",
            "glands: benign glands | atrophic glands\nnests: solid nests of cells",
            "an image of [CLS]\n")
        before = drv.execute_script("return document.body.dataset.classified")
        drv.find_element(By.ID, "rerun").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.classified") != before
                   or d.find_element(By.ID, "zs-error").text)
        err = drv.find_element(By.ID, "zs-error").text
        if err:
            fail("edited prompts: the page shows an error: %s" % err)
        got2 = [(b.get_attribute("data-class"), float(b.get_attribute("data-p")))
                for b in drv.find_elements(By.CSS_SELECTOR, "#probs .prob")]
        with open(tile, "rb") as f:
            import base64
            img = base64.b64encode(f.read()).decode()
        want2 = post(url + "/api/zeroshot", {
            "image": img,
            "prompts": {"classes": ["glands", "nests"], "templates": ["an image of [CLS]"],
                        "descriptions": {"glands": ["benign glands", "atrophic glands"],
                                         "nests": ["solid nests of cells"]}}})
        if [c for c, _ in got2] != want2["classes"] or max(
                abs(p - w) for (_, p), w in zip(got2, want2["probabilities"])) > ATOL:
            fail("edited prompts: page %s, API %s" % (got2, want2))
        ok("edited prompts: the page's bars = the API's answer (%s)"
           % ", ".join("%s %.4f" % cp for cp in got2))
        drv.find_element(By.ID, "reset").click()
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#probs .prob')].map(b => b.dataset.class)")
                   == classes)
        ok("back to the loaded prompts: %s" % classes)

        # text search: the expected tiles, in order, each thumbnail loaded
        def results():
            out = []
            for fig in drv.find_elements(By.CSS_SELECTOR, "#results figure.tile"):
                img = fig.find_element(By.TAG_NAME, "img")
                out.append((int(fig.get_attribute("data-index")), fig.get_attribute("data-name"),
                            img))
            return out

        def thumbnails_loaded(d):
            return d.execute_script(
                "const im = [...document.querySelectorAll('#results img')];"
                "return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0);")

        q_box = drv.find_element(By.ID, "q")
        q_box.clear()
        q_box.send_keys(query)
        k_box = drv.find_element(By.ID, "k")
        k_box.clear()
        k_box.send_keys(str(k))
        drv.find_element(By.CSS_SELECTOR, "#sform button").click()
        wait.until(lambda d: d.find_element(By.ID, "results").get_attribute("data-done")
                   or d.find_element(By.ID, "s-error").text)
        err = drv.find_element(By.ID, "s-error").text
        if err:
            fail("search: the page shows an error: %s" % err)
        wait.until(thumbnails_loaded)
        res = results()
        def check_tiles(what, res, scores):
            got = [i for i, _, _ in res]
            if not ranking_ok(got, scores, k):
                fail("%s: tiles %s, want %s (scores %s)" % (
                    what, [(i, n) for i, n, _ in res],
                    [(i, names[i]) for i in sorted(range(len(X)), key=lambda i: -scores[i])[:k]],
                    ["%.7f" % scores[i] for i in got]))
            for i, n, img in res:
                src = img.get_attribute("src")
                if n != names[i] or not src.endswith("/api/tile/%d" % i):
                    fail("%s: tile %d is named %s, its thumbnail comes from %s" % (what, i, n, src))

        check_tiles("search '%s'" % query, res, scores)
        ok("search '%s': the %d nearest tiles, in order, thumbnails loaded: %s"
           % (query, k, ", ".join(n for _, n in want_tiles)))

        # a click on the first tile: its neighbours, itself first
        first = res[0]
        before = drv.find_element(By.ID, "results").get_attribute("data-done")
        drv.execute_script("arguments[0].click()", first[2].find_element(By.XPATH, ".."))
        wait.until(lambda d: d.find_element(By.ID, "results").get_attribute("data-done") != before)
        wait.until(thumbnails_loaded)
        res2 = results()
        sim = [sum(a * b for a, b in zip(x, X[first[0]])) for x in X]
        check_tiles("click on tile %d" % first[0], res2, sim)
        ok("click on %s: its %d nearest tiles (itself first: %s)"
           % (first[1], k, res2[0][0] == first[0]))

        errs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        if errs:
            fail("the page logged errors: %s" % errs)
        drv.save_screenshot(shot)
        if not os.path.exists(shot) or os.path.getsize(shot) < 10000:
            fail("screenshot %s missing or tiny" % shot)
        ok("screenshot %s (%d bytes)" % (shot, os.path.getsize(shot)))
        if token_url:
            token_page(drv, token_url, token, query)
    finally:
        drv.quit()


def token_page(drv, url, token, query):
    """A server that asks for a token: the page shows the token box, then works with it."""
    wait = WebDriverWait(drv, TIMEOUT)
    drv.get(url + "/")
    wait.until(lambda d: d.find_element(By.ID, "tokenbox").is_displayed())
    if drv.execute_script("return document.body.dataset.ready"):
        fail("token: the page says ready without the token")
    ok("token: the page asks for it")
    drv.find_element(By.ID, "token").send_keys(token)
    drv.find_element(By.ID, "tokenset").click()
    wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    if drv.find_element(By.ID, "tokenbox").is_displayed():
        fail("token: the token box stays after a good token")
    if drv.find_element(By.ID, "zs-error").text:
        fail("token: the 401 message stays: %s" % drv.find_element(By.ID, "zs-error").text)
    q_box = drv.find_element(By.ID, "q")
    q_box.clear()
    q_box.send_keys(query)
    drv.find_element(By.CSS_SELECTOR, "#sform button").click()
    wait.until(lambda d: d.find_element(By.ID, "results").get_attribute("data-done")
               or d.find_element(By.ID, "s-error").text)
    err = drv.find_element(By.ID, "s-error").text
    if err:
        fail("token: search shows an error: %s" % err)
    wait.until(lambda d: d.execute_script(
        "const im = [...document.querySelectorAll('#results img')];"
        "return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0"
        " && i.src.startsWith('blob:'));"))
    ok("token: with it the page loads, searches and shows thumbnails fetched with the token")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print("page test done in %.1f s" % (time.time() - t0))
