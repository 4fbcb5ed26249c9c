#!/usr/bin/env python3
"""The operator console in a real browser.

Starts `clayhook serve` on a temporary folder (SQLite store, one HMAC source,
the probe fixture plugin and the bundled jsonl-sink), posts signed webhooks,
then drives headless Chromium through the console: sign-in (a wrong token
first), the overview, finding an event by row id, replaying a dead delivery
from the dead letters, discarding another, pausing and resuming a plugin,
reloading, the configuration, and signing out. Checks the security headers,
the cookie's flags, and that a POST with the session cookie but without the
CSRF header is refused. Takes a screenshot of each page into --out.

A missing tool (chromium, chromedriver, python3-selenium) fails the test: it
is never skipped. Exits 0 when every check passed, 1 with a message if not.

The images of docs/operations.md come from a run with five minutes of
webhooks first, so the charts have a shape:
  tests/console/console_browser_test.py --clayhook build/bin/clayhook \
    --fixtures build/tests/fixture-plugins --bundled build/plugins \
    --out /tmp/shots --docs docs/images --traffic 300
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

# The Debian packages install selenium for the system's python3; a python3
# found first on PATH (pyenv, a venv) may not have it: run under the system's.
try:
    import selenium  # noqa: F401
except ImportError:
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists(
        "/usr/bin/python3"
    ) and not os.environ.get("CONSOLE_TEST_REEXEC"):
        os.environ["CONSOLE_TEST_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print(
        "FAIL: python3-selenium is not installed (apt-get install chromium chromium-driver "
        "python3-selenium; scripts/test.sh installs them)",
        file=sys.stderr,
    )
    sys.exit(1)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "console-test-admin-token-" + os.urandom(6).hex()
SECRET = "console-test-webhook-secret-" + os.urandom(6).hex()
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
WAIT = 15  # seconds for any one condition
PAGES = ["login", "overview", "events", "event", "dead-letters", "plugins", "config"]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def step(msg):
    print("[console test] " + msg, flush=True)


def wait_until(fn, what, timeout=WAIT, interval=0.05):
    """Calls fn until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_err = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Failure as e:
            last_err = e
        if time.monotonic() > deadline:
            raise Failure("timed out after %ss waiting for %s%s" % (timeout, what, (": %s" % last_err) if last_err else ""))
        time.sleep(interval)


# ---------- HTTP without redirects ----------


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        try:
            return json.loads(self.body.decode())
        except ValueError:
            raise Failure("not JSON (HTTP %d): %r" % (self.status, self.body[:300]))


def fetch(method, port, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        if isinstance(body, str):
            body = body.encode()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        c.close()


# ---------- the host ----------


class Host:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.proc = None
        self.log_path = os.path.join(tmp, "host.log")
        self.config = os.path.join(tmp, "clayhook.yaml")
        self.flag = os.path.join(tmp, "probe-may-succeed")
        self.port = 0
        self.admin_port = 0

    def write_config(self):
        probe = os.path.join(os.path.abspath(self.args.fixtures), "probe.so")
        check(os.path.exists(probe), "the probe fixture is missing: %s (build the tests first)" % probe)
        sink = os.path.join(os.path.abspath(self.args.bundled), "jsonl-sink.so")
        check(os.path.exists(sink), "the bundled jsonl-sink is missing: %s" % sink)
        yaml = """version: 1
log: {level: info}
listener: {address: 127.0.0.1, port: 0, threads: 8}
admin: {enabled: true, address: 127.0.0.1, port: 0, token: "${CONSOLE_TEST_TOKEN}"}
store: {path: %(db)s}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, header: x-clay-signature, secrets: ["${CONSOLE_TEST_SECRET}"]}
    event_type: {from: body, field: event}
    idempotency: {fields: [event, row_id, timestamp]}
dispatch:
  workers: 2
  retry: {max_attempts: 3, backoff_base: 50ms, backoff_cap: 200ms}
plugins:
  - name: probe
    library: %(probe)s
    config: {log: %(probe_log)s}
  - name: sink
    library: bundled:jsonl-sink
    config: {path: %(events)s}
""" % {
            "db": os.path.join(self.tmp, "clayhook.db"),
            "probe": probe,
            "probe_log": os.path.join(self.tmp, "probe.jsonl"),
            "events": os.path.join(self.tmp, "events.jsonl"),
        }
        with open(self.config, "w") as f:
            f.write(yaml)
        os.chmod(self.config, 0o600)

    def start(self):
        self.write_config()
        env = dict(os.environ)
        env.pop("CLAYHOOK_CONFIG", None)
        env.update(
            CONSOLE_TEST_TOKEN=TOKEN,
            CONSOLE_TEST_SECRET=SECRET,
            CLAYHOOK_PLUGIN_DIR=os.path.abspath(self.args.bundled),
            TMPDIR=self.tmp,
        )
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.args.clayhook, "serve", "--config", self.config],
            preexec_fn=die_with_parent,
            cwd=self.tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def ready():
            if self.proc.poll() is not None:
                raise Failure("clayhook serve exited with %s before it was ready:\n%s" % (self.proc.returncode, self.output()))
            for line in self.output().splitlines():
                if "msg=ready" in line:
                    return line
            return None

        line = wait_until(ready, "the host's ready line", timeout=30)
        self.port = port_of(line, "listen")
        self.admin_port = port_of(line, "admin")
        check(self.port and self.admin_port, "no listen= or admin= port on the ready line: " + line)
        step("host ready: listen=%d admin=%d" % (self.port, self.admin_port))

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """Stops the host (SIGTERM, then SIGKILL after 20 s); its exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "log", None) and not self.log.closed:
            self.log.close()
        return self.proc.returncode if self.proc else None

    # The webhook listener.
    def post(self, body, secret=SECRET):
        raw = json.dumps(body, separators=(",", ":")).encode()
        sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return fetch("POST", self.port, "/webhooks/clay", {"Content-Type": "application/json", "x-clay-signature": sig}, raw)

    # The admin API with the bearer token.
    def admin(self, method, path, body=None):
        h = {"Authorization": "Bearer " + TOKEN}
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        return fetch(method, self.admin_port, path, h, body)

    def admin_json(self, path):
        r = self.admin("GET", path)
        check(r.status == 200, "GET %s answered %d: %s" % (path, r.status, r.body[:300]))
        return r.json()

    def delivery(self, event_id, plugin):
        ev = self.admin_json("/admin/events/" + event_id)
        for d in ev.get("deliveries", []):
            if d.get("plugin") == plugin:
                return d
        return None


def die_with_parent():
    """In the child: SIGTERM when the test process dies (killed by a timeout)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def port_of(line, key):
    for part in line.split():
        if part.startswith(key + "="):
            value = part.split("=", 1)[1]
            if ":" in value:
                try:
                    return int(value.rsplit(":", 1)[1])
                except ValueError:
                    return 0
    return 0


# ---------- the events ----------

TYPES = [
    "enrichment.completed",
    "table.row.updated",
    "table.row.created",
    "workflow.completed",
    "enrichment.failed",
    "table.export.completed",
]


def body(event_type, row, probe=None, n=0):
    b = {
        "event": event_type,
        "table_id": "t_console",
        "row_id": row,
        "timestamp": "2026-11-27T04:21:%02d.%03dZ" % (n % 60, n % 1000),
        "data": {"email": "person%d@example.com" % n, "company": {"name": "Company %d" % n, "domain": "company%d.com" % n}},
    }
    if probe is not None:
        b["probe"] = probe
    return b


def post_ok(host, b):
    r = host.post(b)
    check(r.status == 200, "the webhook was refused: HTTP %d %s" % (r.status, r.body[:300]))
    return r.json()["id"]


def traffic(host, seconds, stop):
    """Background webhooks for the docs' screenshots: charts with a shape
    (a burst each minute, a retry now and then, a few forged and repeated)."""
    n = 1000
    start = time.monotonic()
    while time.monotonic() - start < seconds and not stop.is_set():
        burst = (time.monotonic() - start) % 60 < 12
        for _ in range(6 if burst else 1):
            n += 1
            host.post(body(TYPES[n % len(TYPES)], "row_traffic_%05d" % n, {"retry_until": 2} if n % 7 == 0 else {}, n))
        if n % 13 == 0:
            host.post(body("enrichment.completed", "row_forged_%d" % n, {}, n), secret="wrong-secret")
        if n % 17 == 0:
            host.post(body(TYPES[n % len(TYPES)], "row_traffic_%05d" % n, {}, n))  # a duplicate
        stop.wait(0.5)


# ---------- the browser ----------


class Browser:
    def __init__(self, args):
        for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
            check(os.access(path, os.X_OK), "%s is missing: install the Debian package %s" % (path, pkg))
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,900", "--force-device-scale-factor=1", "--lang=en-US",
                  "--disable-extensions", "--no-first-run", "--disable-background-networking", "--hide-scrollbars"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        except WebDriverException as e:
            raise Failure("cannot start Chromium through chromedriver: %s" % e.msg)
        self.d.set_page_load_timeout(30)
        self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        self.out = args.out
        self.shots = {}
        self.console_errors = []

    def quit(self):
        try:
            self.d.quit()
        except Exception:
            pass

    def wait(self, fn, what, timeout=WAIT):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(lambda d: fn())
        except TimeoutException:
            raise Failure("timed out after %ss waiting for %s (at %s)" % (timeout, what, self.d.current_url))

    def path(self):
        return urllib.parse.urlparse(self.d.current_url).path

    def q(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def one(self, css, what=None):
        return self.wait(lambda: (self.q(css) or [None])[0], what or css)

    def ready(self, page):
        self.wait(
            lambda: self.q('#view[data-page="%s"][data-ready="true"]' % page),
            "the %s page to be ready" % page,
        )

    def nav(self, name):
        self.one('#nav a[data-nav="%s"]' % name).click()

    def flash(self, contains):
        def f():
            e = self.q("#flash:not([hidden])")
            return e and contains in e[0].text and e[0]
        el = self.wait(f, "a message saying %r" % contains)
        check(el.get_attribute("data-kind") == "ok", "the message is an error: " + el.text)
        return el

    def logs(self, allow=None):
        """Fails on a JavaScript error or a CSP violation seen so far; allow:
        the parts of the one expected message (a failed request's)."""
        for entry in self.d.get_log("browser"):
            msg = entry.get("message", "")
            if allow and all(a in msg for a in allow) and "Failed to load resource" in msg:
                continue
            if entry.get("level") == "SEVERE" or "Content Security Policy" in msg or "Uncaught" in msg:
                self.console_errors.append(msg)
        check(not self.console_errors, "the browser's console reported errors:\n  " + "\n  ".join(self.console_errors))

    def shot(self, name):
        # The page, up to 1300 px tall: a viewport as tall as the document, then back.
        h = self.d.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
        self.d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": max(760, min(int(h), 1300)), "deviceScaleFactor": 1, "mobile": False},
        )
        try:
            path = os.path.join(self.out, "console-%s.png" % name)
            check(self.d.get_screenshot_as_file(path), "the screenshot %s was not written" % path)
            self.shots[name] = path
        finally:
            self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# ---------- the test ----------


def run(args, tmp):
    host = Host(args, tmp)
    browser = None
    stop = threading.Event()
    try:
        host.start()
        base = "http://127.0.0.1:%d" % host.admin_port

        step("posting webhooks")
        ids = {}
        for i in range(10):
            post_ok(host, body(TYPES[i % len(TYPES)], "row_console_%02d" % i, {}, i))
        ids["target"] = post_ok(host, body("enrichment.completed", "row_console_target", {"fail_unless": host.flag}, 101))
        ids["a2"] = post_ok(host, body("table.row.updated", "row_console_a2", {"fail_unless": host.flag}, 102))
        ids["b"] = post_ok(host, body("enrichment.failed", "row_console_b", {"fail": True}, 103))
        ids["c"] = post_ok(host, body("workflow.completed", "row_console_c", {"retry_until": 99}, 104))
        r = host.post(body("enrichment.completed", "row_console_forged", {}, 105), secret="not-the-secret")
        check(r.status == 401, "a forged signature answered %d, not 401" % r.status)
        r = host.post(body(TYPES[0], "row_console_00", {}, 0))
        check(r.status == 200, "a duplicate answered %d" % r.status)

        def settled():
            pending = host.admin_json("/admin/deliveries?state=pending&limit=1")["deliveries"]
            dead = host.admin_json("/admin/deliveries?state=dead&limit=100")["deliveries"]
            return not pending and len(dead) == 4 and dead
        dead = wait_until(settled, "4 dead deliveries and none pending")
        dead_by_event = {d["event_id"]: d for d in dead}
        check(set(dead_by_event) == {ids["target"], ids["a2"], ids["b"], ids["c"]},
              "the dead deliveries are not those expected: %s" % dead)
        reason_a = dead_by_event[ids["target"]]["last_error"]
        check(reason_a == dead_by_event[ids["a2"]]["last_error"], "the two fail_unless deliveries have different reasons")
        target_delivery = dead_by_event[ids["target"]]["id"]

        if args.traffic > 0:
            step("sending background traffic for %ds (charts for the docs)" % args.traffic)
            t = threading.Thread(target=traffic, args=(host, args.traffic, stop), daemon=True)
            t.start()
            t.join()

        step("headers and the cookie, over HTTP")
        r = fetch("GET", host.admin_port, "/console/events")
        check(r.status == 303, "GET /console/events without a session answered %d, not 303" % r.status)
        check((r.header("Location") or "").endswith("/console/login"), "it redirects to %r, not /console/login" % r.header("Location"))
        r = fetch("GET", host.admin_port, "/admin/plugins")
        check(r.status == 401, "GET /admin/plugins without a session answered %d, not 401" % r.status)
        r = fetch("GET", host.admin_port, "/console/login")
        check(r.status == 200, "GET /console/login answered %d" % r.status)
        check(r.header("Content-Security-Policy") == EXPECTED_CSP, "login's CSP is %r" % r.header("Content-Security-Policy"))
        r = fetch("POST", host.admin_port, "/console/login", {"Content-Type": "application/x-www-form-urlencoded"},
                 urllib.parse.urlencode({"token": TOKEN}))
        check(r.status == 303, "POST /console/login with the token answered %d, not 303" % r.status)
        check((r.header("Location") or "").rstrip("/").endswith("/console"), "sign-in redirects to %r" % r.header("Location"))
        cookies = [c for c in r.all("Set-Cookie") if c.startswith("clayhook_session=")]
        check(cookies, "sign-in set no clayhook_session cookie: %s" % r.all("Set-Cookie"))
        flags = [f.strip().lower() for f in cookies[0].split(";")[1:]]
        for want in ("httponly", "samesite=strict", "path=/"):
            check(want in flags, "the session cookie lacks %s: %s" % (want, cookies[0]))
        check(any(f.startswith("max-age=") for f in flags), "the session cookie has no Max-Age: %s" % cookies[0])
        http_cookie = cookies[0].split(";")[0]
        r = fetch("GET", host.admin_port, "/console/", {"Cookie": http_cookie})
        check(r.status == 200, "GET /console/ with the session answered %d" % r.status)
        check(r.header("Content-Security-Policy") == EXPECTED_CSP, "the CSP of /console/ is %r" % r.header("Content-Security-Policy"))
        check((r.header("X-Content-Type-Options") or "").lower() == "nosniff", "/console/ lacks X-Content-Type-Options: nosniff")
        check((r.header("Content-Type") or "").startswith("text/html"), "/console/ is %r" % r.header("Content-Type"))
        check(b'id="view"' in r.body, "/console/ is not the console's index.html")
        for name, ctype in (("console.js", "javascript"), ("console.css", "text/css"), ("login.html", "text/html"), ("favicon.svg", "image/svg+xml")):
            r = fetch("GET", host.admin_port, "/console/assets/" + name)
            check(r.status == 200, "GET /console/assets/%s answered %d" % (name, r.status))
            check(ctype in (r.header("Content-Type") or ""), "%s is served as %r" % (name, r.header("Content-Type")))
            check((r.header("X-Content-Type-Options") or "").lower() == "nosniff", "%s lacks nosniff" % name)

        step("starting Chromium")
        browser = Browser(args)
        d = browser.d

        step("1. a page without a session lands on the login page")
        d.get(base + "/console/events")
        browser.wait(lambda: browser.path() == "/console/login", "the redirect to /console/login")
        browser.one("#token")
        browser.shot("login")
        browser.logs()

        step("2. a wrong token shows the error")
        browser.one("#token").send_keys("not-the-token")
        browser.one("#login-form button[type=submit]").click()
        err = browser.wait(lambda: (browser.q("#login-error:not([hidden])") or [None])[0], "the wrong-token error")
        check("error=bad-token" in d.current_url, "the wrong token went to %s" % d.current_url)
        check("not the admin token" in err.text, "the error says %r" % err.text)

        step("3. sign in")
        browser.one("#token").send_keys(TOKEN)
        browser.one("#login-form button[type=submit]").click()
        browser.wait(lambda: browser.path() in ("/console/", "/console"), "the overview after sign-in")
        browser.ready("overview")
        c = d.get_cookie("clayhook_session")
        check(c is not None, "the browser has no clayhook_session cookie")
        check(c.get("httpOnly") is True, "the session cookie is not HttpOnly: %s" % c)
        check(c.get("sameSite") == "Strict", "the session cookie is not SameSite=Strict: %s" % c)
        check(d.execute_script("return document.cookie").find("clayhook_session") < 0, "scripts can read the session cookie")

        step("4. the overview shows the plugins")
        browser.one('#overview-plugins tr[data-plugin="probe"]')
        browser.one('#overview-plugins tr[data-plugin="sink"]')
        dead_cell = browser.one('#overview-plugins tr[data-plugin="probe"] td[data-col="dead"]')
        check(dead_cell.text.strip() == "4", "the overview shows %r dead for probe, not 4" % dead_cell.text)
        check(int(browser.one("#intake-accepted").text.replace(",", "")) >= 14, "intake accepted is %r" % browser.one("#intake-accepted").text)
        check(int(browser.one("#intake-rejected").text.replace(",", "")) >= 1, "intake rejected is %r" % browser.one("#intake-rejected").text)
        check(len(browser.q("#overview-charts svg.chart-svg")) == 5, "the overview does not show its 5 charts")
        check(browser.one("#host-generation").text == "generation 1", "the header says %r" % browser.one("#host-generation").text)
        # It polls: the 'updated' stamp changes without a reload.
        first = browser.one("#overview-updated").text
        browser.wait(lambda: browser.one("#overview-updated").text != first, "the overview to refresh itself", timeout=10)
        browser.shot("overview")
        browser.logs()

        step("5. find the event by row id, open it")
        browser.nav("events")
        browser.ready("events")
        browser.wait(lambda: len(browser.q("#events-table tr[data-event-id]")) >= 14, "the events list")
        browser.shot("events")
        browser.one("#filter-row-id").send_keys("row_console_target")
        browser.one("#filter-apply").click()
        browser.wait(lambda: "row_id=row_console_target" in d.current_url, "the filter in the URL")
        browser.ready("events")
        rows = browser.wait(lambda: browser.q("#events-table tr[data-event-id]"), "the filtered list")
        check([x.get_attribute("data-event-id") for x in rows] == [ids["target"]],
              "filtering by row_id found %s, not [%s]" % ([x.get_attribute("data-event-id") for x in rows], ids["target"]))
        d.refresh()  # a deep link with a query string serves the console too
        browser.ready("events")
        rows = browser.wait(lambda: browser.q("#events-table tr[data-event-id]"), "the filtered list after a reload")
        check(len(rows) == 1, "after a reload the filter shows %d rows" % len(rows))
        rows[0].find_element(By.CSS_SELECTOR, "a.event-link").click()
        browser.wait(lambda: browser.path() == "/console/events/" + ids["target"], "the event's page")
        browser.ready("event")
        pre = browser.one("#event-body")
        text = pre.get_attribute("textContent")
        check(json.loads(text) == body("enrichment.completed", "row_console_target", {"fail_unless": host.flag}, 101),
              "the body shown is not the body posted: %s" % text[:300])
        check('\n  "row_id": "row_console_target",\n' in text, "the body is not pretty-printed:\n" + text[:300])
        probe_card = browser.one('#event-deliveries article.delivery[data-plugin="probe"]')
        sink_card = browser.one('#event-deliveries article.delivery[data-plugin="sink"]')
        check(probe_card.get_attribute("data-state") == "dead", "the probe's delivery shows %s" % probe_card.get_attribute("data-state"))
        check(sink_card.get_attribute("data-state") == "done", "the sink's delivery shows %s" % sink_card.get_attribute("data-state"))
        check(probe_card.find_elements(By.CSS_SELECTOR, 'button[data-action="replay"]'), "the dead delivery has no Replay button")
        check(not sink_card.find_elements(By.CSS_SELECTOR, 'button[data-action="replay"]'), "a done delivery has a Replay button")
        attempts = probe_card.find_elements(By.CSS_SELECTOR, "ol.timeline li.tl-fail")
        check(len(attempts) == 1 and "is missing" in attempts[0].text, "the timeline shows %r" % [a.text for a in attempts])
        browser.shot("event")
        # The event of three retries: its timeline has three attempts.
        d.get(base + "/console/events/" + ids["c"])
        browser.ready("event")
        card = browser.one('#event-deliveries article.delivery[data-plugin="probe"]')
        check(len(card.find_elements(By.CSS_SELECTOR, "ol.timeline li.tl-retry")) == 3, "the retried delivery does not show 3 attempts")
        browser.logs()

        step("6. dead letters: replay the dead delivery, discard another")
        browser.nav("dead")
        browser.ready("dead")
        groups = browser.wait(lambda: browser.q("#dead-groups section.dead-group"), "the dead letter groups")
        check(len(groups) == 3, "%d dead letter groups, not 3" % len(groups))

        def group(reason_part):
            for g in browser.q("#dead-groups section.dead-group"):
                if g.get_attribute("data-plugin") == "probe" and reason_part in (g.get_attribute("data-reason") or ""):
                    return g
            return None
        ga = browser.wait(lambda: group("is missing"), "the group of the missing flag")
        check(ga.get_attribute("data-reason") == reason_a, "the group's reason %r is not %r" % (ga.get_attribute("data-reason"), reason_a))
        check(ga.get_attribute("data-count") == "2", "the group counts %s, not 2" % ga.get_attribute("data-count"))
        browser.shot("dead-letters")
        with open(host.flag, "w") as f:
            f.write("ok\n")
        ga.find_element(By.CSS_SELECTOR, 'button[data-action="expand"]').click()
        box = browser.one('#dead-groups input[data-delivery-id="%d"]' % target_delivery)
        box.click()
        ga = group("is missing")
        ga.find_element(By.CSS_SELECTOR, 'button[data-action="replay-selected"]').click()
        browser.flash("Replayed 1 of 1")
        wait_until(lambda: host.delivery(ids["target"], "probe")["state"] == "done", "the replayed delivery to be done")
        browser.ready("dead")
        ga = browser.wait(lambda: (lambda g: g is not None and g.get_attribute("data-count") == "1" and g)(group("is missing")), "the group to count 1")
        ga.find_element(By.CSS_SELECTOR, 'button[data-action="replay-group"]').click()
        browser.flash("Replayed 1 of 1 dead deliveries of probe")
        wait_until(lambda: host.delivery(ids["a2"], "probe")["state"] == "done", "the group's other delivery to be done")
        browser.ready("dead")
        browser.wait(lambda: group("is missing") is None, "the replayed group to disappear")
        gb = browser.wait(lambda: group("probe says fail"), "the group of 'probe says fail'")
        gb.find_element(By.CSS_SELECTOR, 'button[data-action="discard-group"]').click()
        confirm = browser.one('#dead-groups .confirm:not([hidden]) button[data-action="confirm"]', "the discard confirmation")
        check(host.delivery(ids["b"], "probe") is not None, "the discard ran before it was confirmed")
        confirm.click()
        browser.flash("Discarded 1")
        wait_until(lambda: host.delivery(ids["b"], "probe") is None, "the discarded delivery to be gone")
        dl = host.admin_json("/admin/dead-letters")["groups"]
        check(len(dl) == 1 and dl[0]["plugin"] == "probe" and "retry" in dl[0]["reason"], "dead letters left: %s" % dl)
        left = host.admin_json("/admin/deliveries?state=dead")["deliveries"]
        check([x["event_id"] for x in left] == [ids["c"]], "dead deliveries left: %s" % left)
        browser.ready("dead")
        browser.wait(lambda: len(browser.q("#dead-groups section.dead-group")) == 1, "one group left on the page")
        browser.logs()

        step("7. pause and resume a plugin, reload")
        browser.nav("plugins")
        browser.ready("plugins")
        browser.one('#plugins-table button[data-action="pause"][data-plugin="probe"]').click()
        browser.flash("probe is paused")
        browser.one('#plugins-table tr[data-plugin="probe"][data-paused="true"]', "probe shown paused")
        probe = [p for p in host.admin_json("/admin/plugins")["plugins"] if p["name"] == "probe"][0]
        check(probe["paused"] is True, "/admin/plugins says probe is not paused after Pause")
        browser.one('#plugins-table button[data-action="resume"][data-plugin="probe"]').click()
        browser.flash("probe is running again")
        browser.one('#plugins-table tr[data-plugin="probe"][data-paused="false"]', "probe shown running")
        probe = [p for p in host.admin_json("/admin/plugins")["plugins"] if p["name"] == "probe"][0]
        check(probe["paused"] is False, "/admin/plugins says probe is paused after Resume")
        browser.one("#reload-now").click()
        browser.flash("generation 2 serving")
        check(host.admin_json("/admin/reload")["generation"] == 2, "the reload did not make generation 2")
        browser.ready("plugins")
        browser.wait(lambda: browser.one("#host-generation").text == "generation 2", "the header to show generation 2")
        browser.shot("plugins")
        browser.logs()
        # A reload the host refuses (a plugin's library gone): the page says
        # why, and generation 2 keeps serving.
        good = open(host.config).read()
        with open(host.config, "w") as f:
            f.write(good.replace("library: bundled:jsonl-sink", "library: " + os.path.join(tmp, "nothere.so")))
        browser.one("#reload-now").click()
        err = browser.one("#reload-result #reload-error", "the refused reload's reason")
        check("nothere.so" in err.text, "the refused reload shows %r" % err.text)
        browser.wait(lambda: (lambda f: f and f[0].get_attribute("data-kind") == "error" and "keeps serving" in f[0].text)(browser.q("#flash:not([hidden])")),
                     "a message that the reload was refused")
        check(host.admin_json("/admin/reload")["generation"] == 2, "a refused reload changed the generation")
        with open(host.config, "w") as f:
            f.write(good)
        browser.logs(allow=("/admin/reload", "422"))

        step("8. the configuration")
        browser.nav("config")
        browser.ready("config")
        check(browser.one("#config-generation").text.strip() == "2", "the config page shows generation %r" % browser.one("#config-generation").text)
        tree = browser.one("#config-tree").get_attribute("textContent")
        for want in ("probe", "sink", "/webhooks/clay", "CONSOLE_TEST_SECRET"):
            check(want in tree, "the config tree lacks %r" % want)
        src = d.page_source
        check(TOKEN not in src and SECRET not in src, "the config page shows a secret's value")
        browser.shot("config")
        browser.logs()

        step("9. CSRF: the session cookie alone does not change anything")
        cookie = d.get_cookie("clayhook_session")["value"]
        ck = {"Cookie": "clayhook_session=" + cookie}
        r = fetch("POST", host.admin_port, "/admin/plugins/probe/pause", ck)
        check(r.status == 403, "a POST with the cookie and no CSRF header answered %d, not 403" % r.status)
        r = fetch("POST", host.admin_port, "/admin/plugins/probe/pause", dict(ck, **{"X-CSRF-Token": "forged"}))
        check(r.status == 403, "a POST with a wrong CSRF token answered %d, not 403" % r.status)
        check([p for p in host.admin_json("/admin/plugins")["plugins"] if p["name"] == "probe"][0]["paused"] is False,
              "a refused POST paused the plugin")
        s = fetch("GET", host.admin_port, "/admin/session", ck)
        check(s.status == 200 and s.json().get("csrf"), "GET /admin/session with the cookie answered %d %s" % (s.status, s.body[:200]))
        check(fetch("GET", host.admin_port, "/console/plugins").status == 303, "a console page without a session is not refused")

        step("10. sign out")
        browser.one("#sign-out").click()
        browser.wait(lambda: browser.path() == "/console/login", "the login page after signing out")
        notice = browser.one("#login-notice:not([hidden])")
        check("signed out" in notice.text, "after signing out the login page says %r" % notice.text)
        r = fetch("GET", host.admin_port, "/console/", ck)
        check(r.status == 303, "the old session cookie still opens /console/ (HTTP %d)" % r.status)
        r = fetch("GET", host.admin_port, "/admin/plugins", ck)
        check(r.status == 401, "the old session cookie still reads /admin/plugins (HTTP %d)" % r.status)
        d.get(base + "/console/")
        browser.wait(lambda: browser.path() == "/console/login", "the login page for /console/ after signing out")
        browser.logs()

        step("11. too many wrong tokens: sign-in is refused for a while")
        for _ in range(5):
            fetch("POST", host.admin_port, "/console/login", {"Content-Type": "application/x-www-form-urlencoded"}, "token=wrong")
        browser.one("#token").send_keys(TOKEN)
        browser.one("#login-form button[type=submit]").click()
        browser.wait(lambda: "error=rate-limited" in d.current_url, "the rate-limited redirect")
        err = browser.one("#login-error:not([hidden])")
        check("Too many wrong tokens" in err.text, "the rate-limited page says %r" % err.text)
        check(d.get_cookie("clayhook_session") is None, "a rate-limited sign-in set a session cookie")
        browser.logs()

        if args.docs:
            os.makedirs(args.docs, exist_ok=True)
            for name, path in browser.shots.items():
                shutil.copyfile(path, os.path.join(args.docs, "console-%s.png" % name))
            step("copied %d screenshots to %s" % (len(browser.shots), args.docs))
        missing = [p for p in PAGES if p not in browser.shots]
        check(not missing, "no screenshot of %s" % missing)

        step("12. the host stops cleanly")
        browser.quit()
        browser = None
        rc = host.stop()
        check(rc == 0, "clayhook serve exited with %s on SIGTERM" % rc)
        for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            check(bad not in host.output(), "the host's log has %r" % bad)
    except Exception:
        out = host.output()
        if out:
            print("---- the host's log (last 60 lines) ----", file=sys.stderr)
            print("\n".join(out.splitlines()[-60:]), file=sys.stderr)
        if browser is not None:
            try:
                browser.d.get_screenshot_as_file(os.path.join(args.out, "console-failure.png"))
                print("the page at the failure: %s (%s)" % (os.path.join(args.out, "console-failure.png"), browser.d.current_url), file=sys.stderr)
            except Exception:
                pass
        raise
    finally:
        stop.set()
        if browser is not None:
            browser.quit()
        host.stop()


def on_sigterm(_sig, _frame):
    raise Failure("stopped by SIGTERM")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clayhook", required=True, help="the clayhook binary")
    ap.add_argument("--fixtures", required=True, help="the folder of the fixture plugins (probe.so)")
    ap.add_argument("--bundled", required=True, help="the folder of the bundled plugins (jsonl-sink.so)")
    ap.add_argument("--out", required=True, help="where the screenshots go")
    ap.add_argument("--docs", help="also copy the screenshots here (docs/images)")
    ap.add_argument("--traffic", type=int, default=0, help="seconds of background webhooks before the browser (for the docs)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    args.clayhook = os.path.abspath(args.clayhook)
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    for old in os.listdir(args.out):  # no screenshot of an earlier run passes for this one's
        if old.startswith("console-") and old.endswith(".png"):
            os.remove(os.path.join(args.out, old))
    if not os.access(args.clayhook, os.X_OK):
        print("FAIL: %s is not an executable" % args.clayhook, file=sys.stderr)
        return 1
    # A timeout's SIGTERM still stops the host and removes the folder.
    signal.signal(signal.SIGTERM, on_sigterm)
    tmp = tempfile.mkdtemp(prefix="clayhook-console-")
    started = time.monotonic()
    try:
        run(args, tmp)
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    except Exception as e:  # selenium or OS errors: a failure all the same
        import traceback
        traceback.print_exc()
        print("FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    step("PASS in %.1f s; screenshots in %s" % (time.monotonic() - started, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
