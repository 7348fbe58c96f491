"""screenshots.py - the README's screenshots, in headless Chromium (selenium + chromedriver).

  python screenshots.py page URL TILE QUERY OUT.png     the page of `medvlm serve` at URL after
                                                         uploading TILE and searching for QUERY (7 tiles)
  python screenshots.py report REPORT.html OUT.png      a `--report` HTML file

Run by tools/screenshots.sh. Chromium resolves no host but the loopback address. Exits 1, with
a FAIL line, when the page shows an error, logs one, or a thumbnail does not load.
"""

import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 60


def fail(msg):
    print("FAIL " + msg, flush=True)
    sys.exit(1)


def browser(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-default-apps", "--hide-scrollbars",
              "--force-device-scale-factor=1", "--window-size=%d,%d" % (width, height),
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
              "--proxy-server=direct://"):
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(TIMEOUT)
    return drv


def no_errors(drv, what):
    errs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    if errs:
        fail("%s logged errors: %s" % (what, errs))


def images_loaded(drv, selector):
    return drv.execute_script(
        "const im = [...document.querySelectorAll(arguments[0])];"
        "return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0);", selector)


def whole_page(drv, width):
    """Make the viewport as tall as the page (at most 2400 px) for the screenshot."""
    height = drv.execute_script(
        "const e = document.documentElement, b = document.body;"
        "return Math.max(e.scrollHeight, b.scrollHeight, e.offsetHeight, b.offsetHeight);")
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False})


def page(url, tile, query, out):
    if not url.startswith("http://127.0.0.1:"):
        fail("loopback only: %s" % url)
    drv = browser(1200, 860)
    try:
        wait = WebDriverWait(drv, TIMEOUT)
        drv.get(url + "/")
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        drv.find_element(By.ID, "file").send_keys(os.path.abspath(tile))
        wait.until(lambda d: d.execute_script("return document.body.dataset.classified")
                   is not None or d.find_element(By.ID, "zs-error").text)
        if drv.find_element(By.ID, "zs-error").text:
            fail("zero-shot: %s" % drv.find_element(By.ID, "zs-error").text)
        q = drv.find_element(By.ID, "q")
        q.clear()
        q.send_keys(query)
        k = drv.find_element(By.ID, "k")
        k.clear()
        k.send_keys("7")  # one row of thumbnails
        drv.find_element(By.CSS_SELECTOR, "#sform button").click()
        wait.until(lambda d: d.find_element(By.ID, "results").get_attribute("data-done")
                   or d.find_element(By.ID, "s-error").text)
        if drv.find_element(By.ID, "s-error").text:
            fail("search: %s" % drv.find_element(By.ID, "s-error").text)
        wait.until(lambda d: images_loaded(d, "#results img"))
        no_errors(drv, "the page")
        drv.execute_script("document.activeElement.blur()")  # no blinking caret in the shot
        whole_page(drv, 1200)
        drv.save_screenshot(out)
    finally:
        drv.quit()


def report(html, out):
    drv = browser(1100, 1300)
    try:
        drv.get("file://" + os.path.abspath(html))
        no_errors(drv, "the report")
        if drv.execute_script("return document.images.length") and not images_loaded(drv, "img"):
            fail("a thumbnail of the report did not decode")
        whole_page(drv, 1100)
        drv.save_screenshot(out)
    finally:
        drv.quit()


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "page":
        page(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(*sys.argv[2:])
    else:
        fail(__doc__)
    print("wrote %s (%d bytes)" % (sys.argv[-1], os.path.getsize(sys.argv[-1])), flush=True)


if __name__ == "__main__":
    main()
