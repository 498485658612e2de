"""End-to-end test of the dashboard in headless Chromium (Debian's chromium and chromedriver,
driven by selenium): loads every page of a running `quantlake serve`, checks that the figures it
shows are the API's, plans a backfill from a hole of the coverage map and triggers it, runs a
validation from its page, and saves a full-page screenshot of each page.

usage: browser.py BASE_URL SCREENSHOT_DIR AS_OF_DATE
       browser.py --shot BASE_URL PATH OUT.png   (one page, no checks)
Exits 1 with the failed check's message.
"""

import base64
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE, OUT, AS_OF = (sys.argv[1:4] + ["", "", ""])[:3]


def api(path, body=None):
    """The API's answer, as the pages' figures must match it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.load(r)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    # The flags that keep Chromium off the network (this machine has none but loopback).
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--user-data-dir=" + tempfile.mkdtemp(prefix="quantlake-chromium-")]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def screenshot(driver, name):
    """The whole page, not only the window."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    with open(os.path.join(OUT, name + ".png"), "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def load(driver, path):
    driver.get(BASE + path)
    check(not driver.find_elements(By.CSS_SELECTOR, "[data-error]"),
          f"{path} shows an error: " + " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-error]")))
    check(driver.find_elements(By.TAG_NAME, "h1"), f"{path}: no page")


def figure(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'[data-figure="{name}"]').text.strip()


def pct(v):
    return f"{v * 100:.2f}%"


def wait_for_status(driver, wanted, seconds=120):
    """A job page: waits until its status badge (updated live, reloaded when the job ends) says `wanted`."""
    def done(d):
        badges = d.find_elements(By.CSS_SELECTOR, '[data-field="status"]')
        return badges and badges[0].text.strip() in wanted
    WebDriverWait(driver, seconds, poll_frequency=0.5).until(done)
    return driver.find_element(By.CSS_SELECTOR, '[data-field="status"]').text.strip()


def overview(driver):
    load(driver, f"/?as_of_date={AS_OF}")
    o = api(f"/api/health?as_of_date={AS_OF}")
    judged = [d for d in o["datasets"] if d["status"]]
    for status in ["GREEN", "YELLOW", "RED"]:
        want = sum(1 for d in judged if d["status"] == status)
        check(figure(driver, status.lower()) == str(want), f"overview: {status} datasets {figure(driver, status.lower())} != API {want}")
    check(figure(driver, "severity") == o["severity"], f"overview: severity {figure(driver, 'severity')} != {o['severity']}")
    written = [d for d in o["datasets"] if d["snapshot_id"] > 0]
    check(len(driver.find_elements(By.CSS_SELECTOR, "#datasets tbody tr")) == len(written), "overview: one row per dataset written")
    for d in written:
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-dataset="{d["dataset"]}"]')
        shown = row.find_element(By.CSS_SELECTOR, '[data-field="status"]').text.strip()
        check(shown == (d["status"] or "not judged"), f"overview: {d['dataset']} shows {shown}, API {d['status']}")
        check(row.find_element(By.CSS_SELECTOR, '[data-field="rows"]').text == str(d["rows"]), f"overview: {d['dataset']} rows")
        check(row.find_element(By.CSS_SELECTOR, '[data-field="latest_session"]').text == (d["latest_session"] or ""), f"overview: {d['dataset']} latest session")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#conditions tbody tr")) == len(o["conditions"]), "overview: conditions")
    screenshot(driver, "overview")


def data_quality(driver, start, end):
    load(driver, f"/dq?start={start}&end={end}")
    s = api(f"/api/dq/summary?start={start}&end={end}")
    t = s["total"]
    check(figure(driver, "coverage") == pct(t["coverage"]), f"dq: coverage {figure(driver, 'coverage')} != {pct(t['coverage'])}")
    check(figure(driver, "outliers") == str(t["outlier_count"]), "dq: outliers")
    check(figure(driver, "symbols") == str(t["symbols"]), "dq: symbols")
    check(figure(driver, "sessions_with_data") == str(s["sessions_with_data"]), "dq: sessions with data")
    check(len(driver.find_elements(By.CSS_SELECTOR, ".chart svg")) >= 4, "dq: the four charts")
    rows = driver.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")
    check(len(rows) == len(s["sessions"]), f"dq: {len(rows)} session rows, API {len(s['sessions'])}")
    for row, session in zip(rows, s["sessions"]):
        shown = row.find_element(By.CSS_SELECTOR, '[data-field="coverage"]').text
        check(shown == pct(session["coverage"]), f"dq: {session['date']} coverage {shown} != {pct(session['coverage'])}")
    screenshot(driver, "dq")
    # Drill-down: a session's symbols.
    first = s["sessions"][0]["date"]
    driver.find_element(By.CSS_SELECTOR, f'tr[data-session="{first}"] a').click()
    metrics = api(f"/api/dq/metrics?start={first}&end={first}")
    shown = driver.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")
    check(len(shown) == len(metrics), f"dq drill-down: {len(shown)} rows, API {len(metrics)}")


def coverage_and_backfill(driver, start, end):
    load(driver, f"/coverage?start={start}&end={end}")
    c = api(f"/api/coverage?start={start}&end={end}")
    check(figure(driver, "holes") == str(c["holes"]), f"coverage: holes {figure(driver, 'holes')} != {c['holes']}")
    check(figure(driver, "complete") == str(c["complete"]), "coverage: complete")
    holes = driver.find_elements(By.CSS_SELECTOR, "a.hole")
    check(len(holes) == c["holes"] and holes, f"coverage: {len(holes)} clickable holes, API {c['holes']}")
    screenshot(driver, "coverage")
    # A cell with no bars at all: the source delivers them when asked again (a gap inside a
    # session stays a gap).
    missing = driver.find_elements(By.CSS_SELECTOR, "a.hole[data-missing]")
    check(missing, "coverage: no cell without bars to backfill")
    symbol, session = missing[0].get_attribute("data-symbol"), missing[0].get_attribute("data-session")
    missing[0].click()
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.plan"))
    plan = api("/api/backfills", {"dataset_name": "curated_1m_bars", "symbols": symbol, "start": session, "end": session, "dry_run": True})
    check(plan["triggered"] == "plan", f"the dry run: {plan}")
    shown = driver.find_element(By.CSS_SELECTOR, 'table.plan [data-field="cells_to_fetch"]').text
    check(shown == str(plan["cells_to_fetch"]), f"backfill plan: cells to fetch {shown} != {plan['cells_to_fetch']}")
    for step in plan["steps"]:
        cell = driver.find_element(By.CSS_SELECTOR, f'tr[data-step="{step["step"]}"] [data-field="partitions"]').text
        check(cell == str(step["partitions"]), f"backfill plan: {step['step']} partitions {cell} != {step['partitions']}")
    screenshot(driver, "backfill-plan")
    # Trigger it: confirm the plan, accept the dialog, follow the job live to its end.
    form = driver.find_element(By.ID, "trigger")
    form.find_element(By.CSS_SELECTOR, 'input[type="checkbox"]').click()
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert).accept()
    WebDriverWait(driver, 60).until(lambda d: "/jobs/" in d.current_url)
    status = wait_for_status(driver, {"SUCCEEDED", "FAILED", "PARTIAL"})
    check(status == "SUCCEEDED", f"the triggered backfill ended {status}")
    after = api(f"/api/coverage?start={start}&end={end}")
    check(after["holes"] == c["holes"] - 1, f"the backfill filled the hole: {after['holes']} holes left")


def jobs(driver):
    load(driver, "/jobs")
    j = api("/api/jobs")
    check(figure(driver, "jobs") == str(len(j)), f"jobs: {figure(driver, 'jobs')} != {len(j)}")
    check(len(driver.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == len(j), "jobs: rows")
    screenshot(driver, "jobs")


def snapshots(driver):
    load(driver, "/snapshots?dataset=curated_1m_bars")
    s = api("/api/snapshots?dataset=curated_1m_bars")
    rows = driver.find_elements(By.CSS_SELECTOR, "#snapshots tbody tr")
    check(len(rows) == len(s["snapshots"]), f"snapshots: {len(rows)} rows, API {len(s['snapshots'])}")
    check(rows[0].get_attribute("data-snapshot") == str(s["snapshots"][0]["snapshot_id"]), "snapshots: newest first")
    screenshot(driver, "snapshots")


def bars(driver, session):
    load(driver, f"/bars?symbols=AAPL&start={session}")
    b = api(f"/api/bars?symbols=AAPL&start={session}")
    for name in ["rows", "gaps", "outliers"]:
        check(figure(driver, name) == str(b[name]), f"bars: {name} {figure(driver, name)} != {b[name]}")
    check(driver.find_elements(By.CSS_SELECTOR, ".chart svg"), "bars: the price chart")
    screenshot(driver, "bars")


def lineage(driver):
    load(driver, "/lineage")
    l = api("/api/lineage")
    for name, key in [("records", "records"), ("fallbacks", "fallbacks"), ("models", "models")]:
        check(figure(driver, name) == str(len(l[key])), f"lineage: {name}")
    check(len(driver.find_elements(By.CSS_SELECTOR, "details.lineage")) == len(l["records"]), "lineage: records listed")
    screenshot(driver, "lineage")


def validation(driver):
    load(driver, "/validation")
    if not api("/api/validation")["report"]:
        driver.find_element(By.CSS_SELECTOR, 'form[action="/validation"] button').click()
        WebDriverWait(driver, 60).until(lambda d: "/jobs/" in d.current_url)
        check(wait_for_status(driver, {"SUCCEEDED", "FAILED"}) == "SUCCEEDED", "validation job")
        load(driver, "/validation")
    v = api("/api/validation")["report"]
    check(figure(driver, "checks") == str(len(v["checks"])), f"validation: checks {figure(driver, 'checks')} != {len(v['checks'])}")
    for status in ["GREEN", "YELLOW", "RED"]:
        check(figure(driver, status.lower()) == str(sum(1 for c in v["checks"] if c["status"] == status)), f"validation: {status}")
    screenshot(driver, "validation")
    # Interactive: filtering by status shows only those checks.
    load(driver, "/validation?status=GREEN")
    check(all(r.get_attribute("data-status") == "GREEN" for r in driver.find_elements(By.CSS_SELECTOR, "#checks tbody tr")), "validation: filter")


def alerts(driver):
    load(driver, f"/alerts?as_of_date={AS_OF}")
    a = api(f"/api/alerts?as_of_date={AS_OF}")
    check(figure(driver, "severity") == a["severity"], "alerts: severity")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#conditions tbody tr")) == len(a["conditions"]), "alerts: conditions")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")) == len(a["history"]), "alerts: history")
    screenshot(driver, "alerts")


def bad_input(driver):
    driver.get(BASE + "/dq?dataset=no_such_dataset")
    errors = driver.find_elements(By.CSS_SELECTOR, "[data-error]")
    check(errors and "unknown dataset" in errors[0].text, "a bad dataset shows its error on the page")


def main():
    if sys.argv[1] == "--shot":
        # browser.py --shot BASE_URL PATH OUT.png: one page's screenshot (the README's).
        global BASE
        BASE, path, out = sys.argv[2], sys.argv[3], sys.argv[4]
        driver = browser()
        try:
            load(driver, path)
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            with open(out, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        finally:
            driver.quit()
        return
    os.makedirs(OUT, exist_ok=True)
    driver = browser()
    try:
        dq = api("/api/dq/summary")
        start, end = dq["start"], dq["end"]
        steps = [("overview", lambda: overview(driver)),
                 ("data quality", lambda: data_quality(driver, start, end)),
                 ("coverage and backfill", lambda: coverage_and_backfill(driver, start, end)),
                 ("jobs", lambda: jobs(driver)),
                 ("snapshots", lambda: snapshots(driver)),
                 ("bars", lambda: bars(driver, end)),
                 ("lineage", lambda: lineage(driver)),
                 ("validation", lambda: validation(driver)),
                 ("alerts", lambda: alerts(driver)),
                 ("bad input", lambda: bad_input(driver))]
        for name, step in steps:
            began = time.monotonic()
            step()
            print(f"ok  {name} ({time.monotonic() - began:.1f} s)")
    except Exception as e:  # noqa: BLE001 - report any failure with the page it happened on
        try:
            screenshot(driver, "failure")
        except Exception:  # noqa: BLE001
            pass
        print(f"FAILED at {driver.current_url}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
