#!/usr/bin/env python3
"""Screenshots of the console's main pages for the README, taken in
Debian's headless Chromium through chromedriver's WebDriver API (no
third-party Python packages). Walks the seed's story on a fresh database:

    scripts/screenshots.py [out-dir]     (default docs/screenshots)
"""
import base64, json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "docs", "screenshots"))
target = os.environ.get("CARGO_TARGET_DIR", "/var/cache/ferry-target")
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True, env={**os.environ, "CARGO_TARGET_DIR": target})
ferry = os.path.join(target, "release", "ferry")
work = tempfile.mkdtemp(prefix="ferry-shots.")
db = os.path.join(work, "ferry.db")

def run(*args):
    return subprocess.run([ferry, "--db", db, *args], check=True, capture_output=True, text=True).stdout

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

story = os.path.join(root, "examples", "story")
run("org", "create", "acme"); run("site", "create", "acme", "eu"); run("site", "create", "acme", "us")
run("site", "import", "eu", os.path.join(story, "eu")); run("site", "import", "us", os.path.join(story, "us"))
password = run("admin", "create", "acme", "admin@acme.test").rsplit(" ", 1)[1].strip()
port, driver_port = free_port(), free_port()
server = subprocess.Popen([ferry, "--db", db, "serve", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base, wd = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{driver_port}"

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(wd + path, data=data, method=method, headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["value"]

try:
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/sign-in"); urllib.request.urlopen(wd + "/status"); break
        except OSError:
            time.sleep(0.1)
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]
    session = call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
    s = f"/session/{session}"
    def go(path): call("POST", s + "/url", {"url": base + path}); time.sleep(0.4)
    def find(css):
        for _ in range(50):
            found = call("POST", s + "/element", {"using": "css selector", "value": css})
            if "element-6066-11e4-a52e-4f735466cecf" in found:
                return found["element-6066-11e4-a52e-4f735466cecf"]
            time.sleep(0.1)
        raise SystemExit(f"no {css} on {call('GET', s + '/url')}: {found}")
    def click(css): call("POST", f"{s}/element/{find(css)}/click", {}); time.sleep(0.5)
    def type_in(css, text): call("POST", f"{s}/element/{find(css)}/value", {"text": text})
    def shot(name):
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, name + ".png"), "wb") as f:
            f.write(base64.b64decode(call("GET", s + "/screenshot")))
    go("/sign-in"); type_in("#email", "admin@acme.test"); type_in("#password", password); shot("sign-in"); click("#sign-in")
    go("/console/copies"); call("POST", f"{s}/element/{find('#from option[value=eu]')}/click", {}); call("POST", f"{s}/element/{find('#to option[value=us]')}/click", {})
    shot("copy-plans"); click("#check"); shot("check"); click("#run"); time.sleep(2.5); shot("run")
    go("/console/copies/1/details"); shot("view-details")
    go("/console/users"); shot("user-management")
    go("/console/sites/us/groups/customers-from-eu"); shot("group-review")
    go("/console/sites/us/customers?duplicates=true"); shot("customers")
    go("/console/audit"); shot("audit-log")
    chen = run("customer", "password", "us", "chen@acme.test").rsplit(" ", 1)[1].strip()
    go("/console/sites/us/groups/customers-from-eu"); click("#approve"); shot("confirm-approve"); click("#confirm-decision")
    go("/help/us/sign-in"); type_in("#email", "chen@acme.test"); type_in("#password", chen); click("#sign-in"); shot("help-center")
    call("DELETE", s)
    print("screenshots in", out)
finally:
    server.terminate(); driver.terminate()
