//! The `ferry` binary end to end, on both backends: exit codes, messages,
//! and the seed's story before any copy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use std::path::Path;
use std::process::{Command, Output};

use ferry_testkit::{Backend, TestDb, on_both_backends, story_dir};

struct Ferry {
    db: TestDb,
    cwd: tempfile::TempDir,
}

impl Ferry {
    fn new(backend: Backend) -> Ferry {
        Ferry { db: TestDb::new(backend), cwd: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .args(args)
            .env("FERRY_DB", &self.db.url)
            .env("FERRY_ACTOR", "cli:tester")
            .env_remove("JIRA_EMAIL")
            .env_remove("JIRA_API_TOKEN")
            .env_remove("ATLASSIAN_ADMIN_API_KEY")
            .current_dir(self.cwd.path());
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "ferry {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code 2 (bad input); returns stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(2), "ferry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    }

    fn story(&self) {
        self.ok(&["org", "create", "acme"]);
        self.ok(&["site", "create", "acme", "eu"]);
        self.ok(&["site", "create", "acme", "us"]);
        self.ok(&["site", "import", "eu", &path(&story_dir().join("eu"))]);
        self.ok(&["site", "import", "us", &path(&story_dir().join("us"))]);
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn the_story_before_a_copy(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.story();
    assert_eq!(ferry.ok(&["access", "eu", "Chen@ACME.test"]), "SUP-3\n");
    assert_eq!(ferry.ok(&["access", "us", "fay@acme.test"]), "HR-1\n");
    assert_eq!(ferry.ok(&["access", "us", "fay@acme.test", "--type", "portal-only"]), "HR-1\n");
    assert_eq!(ferry.ok(&["access", "us", "chen@acme.test"]), "");
    let stderr = ferry.refused(&["access", "us", "bruno@acme.test", "--type", "atlassian"]);
    assert!(stderr.contains("no Atlassian account with email bruno@acme.test on site us"), "{stderr}");
    let all = ferry.ok(&["customer", "list", "us"]);
    assert_eq!(
        all,
        "Customer email,Account type,Account id,Display name,Active\n\
         bruno@acme.test,Portal-only,po-bruno-us,Bruno,true\n\
         chen@acme.test,Atlassian account,aa-chen,Chen,true\n\
         eli@acme.test,Atlassian account,aa-eli,Eli,true\n\
         fay@acme.test,Portal-only,po-fay-us,Fay,true\n"
    );
    let atlassian = ferry.ok(&["customer", "list", "us", "--type", "atlassian"]);
    assert_eq!(atlassian.lines().count(), 3);
    assert!(atlassian.lines().skip(1).all(|l| l.contains("Atlassian account")));
    assert_eq!(ferry.ok(&["customer", "list", "us", "--duplicates"]).lines().count(), 1, "no duplicates before a copy");
}

fn a_bad_import_exits_2_names_every_row_and_writes_nothing(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.ok(&["org", "create", "acme"]);
    ferry.ok(&["site", "create", "acme", "eu"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\n\
         po-1,customer,a@acme.test,A,true,true\n\
         po-2,customer,not-an-email,B,true,true\n\
         po-3,robot,c@acme.test,C,true,true\n",
    )
    .unwrap();
    let stderr = ferry.refused(&["site", "import", "eu", &path(dir.path())]);
    let accounts = path(&dir.path().join("accounts.csv"));
    assert!(stderr.contains(&format!("{accounts}:3: email \"not-an-email\" has no '@'")), "{stderr}");
    assert!(stderr.contains(&format!("{accounts}:4: account_type \"robot\"")), "{stderr}");
    assert!(stderr.contains("2 problem(s)") && stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(ferry.ok(&["customer", "list", "eu"]).lines().count(), 1, "only the header: nothing written");
}

fn a_database_from_a_newer_ferry_is_refused_by_name(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.ok(&["org", "create", "acme"]);
    let mut store = ferry.db.store();
    store
        .write(|tx| tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'later')", &[]))
        .unwrap();
    let out = ferry.run(&["org", "create", "other"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migrated by a newer ferry (schema version 999"), "{stderr}");
    let others =
        store.read(|tx| tx.query_opt("SELECT COUNT(*) FROM orgs WHERE name = 'other'", &[], |r| r.int(0))).unwrap();
    assert_eq!(others, Some(0), "nothing written");
}

fn unknown_names_exit_2_with_what_to_do(backend: Backend) {
    let ferry = Ferry::new(backend);
    if backend == Backend::Sqlite {
        // No database yet: only `org create` and `demo` start one.
        let stderr = ferry.refused(&["site", "create", "nope", "eu"]);
        assert!(stderr.contains("no such database file"), "{stderr}");
        assert!(!Path::new(&ferry.db.url).exists(), "a refused command created the database");
    }
    ferry.ok(&["org", "create", "other"]);
    let stderr = ferry.refused(&["site", "create", "nope", "eu"]);
    assert!(stderr.contains("no organization named \"nope\"") && stderr.contains("ferry org create nope"), "{stderr}");
    let stderr = ferry.refused(&["customer", "list", "eu"]);
    assert!(stderr.contains("no site named \"eu\""), "{stderr}");
    ferry.ok(&["org", "create", "acme"]);
    let stderr = ferry.refused(&["org", "create", "acme"]);
    assert!(stderr.contains("already exists"), "{stderr}");
    let stderr = ferry.refused(&["site", "create", "acme", "Not A Slug"]);
    assert!(stderr.contains("is not valid"), "{stderr}");
    let stderr = ferry.refused(&["site", "import", "eu", "/no/such/folder"]);
    assert!(stderr.contains("/no/such/folder"), "{stderr}");
    ferry.ok(&["site", "create", "acme", "eu"]);
    let stderr = ferry.refused(&["access", "eu", "nobody@acme.test"]);
    assert!(stderr.contains("no customer with email nobody@acme.test on site eu"), "{stderr}");
    let stderr = ferry.refused(&["access", "eu", "not an email"]);
    assert!(stderr.contains("email"), "{stderr}");
}

fn demo_then_export_and_list(backend: Backend) {
    let ferry = Ferry::new(backend);
    let out = ferry.ok(&["demo", "--customers", "300", "--seed", "4"]);
    assert!(out.contains("site demo-src with 300 customers"), "{out}");
    let listed = ferry.ok(&["customer", "list", "demo-src"]);
    assert_eq!(listed.lines().count(), 301);
    assert!(listed.lines().any(|l| l.starts_with("'=cmd.")), "formula-looking email is guarded: {listed}");
    let duplicates = ferry.ok(&["customer", "list", "demo-dst", "--duplicates"]);
    assert!(duplicates.lines().count() > 1);
    let stderr = ferry.refused(&["demo", "--customers", "10"]);
    assert!(stderr.contains("organization \"demo\" already exists"), "{stderr}");
    let exported = ferry.cwd.path().join("export");
    ferry.ok(&["site", "export", "demo-dst", &path(&exported)]);
    assert!(exported.join("accounts.csv").is_file() && exported.join("comments.csv").is_file());
}

/// `FERRY_PLAN_PART` (customers a first copy's plan decides at once): a
/// value that is not a positive number is refused by name before any work,
/// and the next command goes on; a copy planned in parts of 40 customers
/// writes the report and destination a copy planned whole writes.
fn a_copy_planned_in_parts_from_the_setting(backend: Backend) {
    let whole = Ferry::new(backend);
    let parted = Ferry::new(backend);
    for ferry in [&whole, &parted] {
        ferry.ok(&["demo", "--customers", "300", "--seed", "4"]);
    }
    let copy = ["copy", "run", "--from", "demo-src", "--to", "demo-dst", "--report", "report"];
    for bad in ["abc", "0", "-3", ""] {
        let out = parted.run_with(&copy, &[("FERRY_PLAN_PART", bad)]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("FERRY_PLAN_PART") && stderr.contains("positive whole number"), "{stderr}");
    }
    assert!(!parted.cwd.path().join("report").exists(), "nothing was written");
    whole.ok(&copy);
    let out = parted.run_with(&copy, &[("FERRY_PLAN_PART", "40")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["Customers.csv", "RequiresAttention.csv"] {
        let read = |ferry: &Ferry| std::fs::read_to_string(ferry.cwd.path().join("report").join(file)).unwrap();
        assert_eq!(read(&parted), read(&whole), "{file}");
    }
    assert_same(&exports(&parted, &["demo-dst"]), &exports(&whole, &["demo-dst"]), "the destination");
}

/// SPEC §2: a run can be interrupted at any point; resume finishes it with
/// exactly the state an uninterrupted run leaves.
fn a_killed_copy_resumes_to_exactly_an_uninterrupted_copy(backend: Backend) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let reference = Ferry::new(backend);
    let crashed = Ferry::new(backend);
    for ferry in [&reference, &crashed] {
        ferry.ok(&["demo", "--customers", "100000", "--seed", "3"]);
    }
    let copy = ["copy", "run", "--from", "demo-src", "--to", "demo-dst", "--report", "report"];
    let chunk = "2000";
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(copy)
        .env("FERRY_DB", &reference.db.url)
        .env("FERRY_COPY_CHUNK", chunk)
        .current_dir(reference.cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let whole = started.elapsed();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference.cwd.path().join("report/Summary.json")).unwrap())
            .unwrap();
    let planning = Duration::from_secs_f64(summary["timings_seconds"]["plan"].as_f64().unwrap());

    // A small generator of kill points, seeded from the clock; the seed is
    // printed so a failure can be replayed.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill-point seed {seed}");
    let mut state = seed;
    let mut random = move |bound: Duration| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bound.mul_f64((state % 10_000) as f64 / 10_000.0)
    };
    let mut run_id: Option<String> = None;
    let mut kills = 0;
    let mut planning_kills = 0;
    loop {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        match &run_id {
            None => command.args(copy),
            Some(id) => command.args(["copy", "resume", id.as_str(), "--report", "report"]),
        };
        // The crashed copy decides its plan in parts (as a source of more
        // than a million accounts does), the reference whole. Planning is
        // one transaction: a kill in any part leaves no plan, and the
        // resume plans again; the copy must still be the whole plan's.
        let mut child = command
            .env("FERRY_DB", &crashed.db.url)
            .env("FERRY_COPY_CHUNK", chunk)
            .env("FERRY_PLAN_PART", "30000")
            .current_dir(crashed.cwd.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if run_id.is_none() {
            let mut first = String::new();
            BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
            let id = first.trim().strip_prefix("run ").unwrap_or_else(|| panic!("first line {first:?}"));
            run_id = Some(id.to_owned());
        }
        let status = crashed.ok(&["copy", "status", run_id.as_deref().unwrap()]);
        // Planning is one transaction: give it a chance to finish; after it,
        // aim for about thirty kill points over the rest of the copy.
        let planning_now = status.contains("state: planning");
        let bound = if kills >= 25 {
            whole * 10
        } else if planning_now {
            // Parts take about 1.5x the reference's whole plan.
            planning.mul_f64(2.5).max(Duration::from_millis(50))
        } else {
            (whole.saturating_sub(planning) / 30).max(Duration::from_millis(20))
        };
        let deadline = Instant::now() + random(bound);
        let mut finished = None;
        while Instant::now() < deadline && finished.is_none() {
            finished = child.try_wait().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        match finished.or(child.try_wait().unwrap()) {
            Some(exit) => {
                assert!(exit.success(), "an uninterrupted attempt failed");
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                planning_kills += usize::from(planning_now);
                // Whatever the kill left, the customers page's totals are
                // its rows' (a copy counts each chunk as it commits it).
                ferry_testkit::assert_counts_kept(&mut crashed.db.store());
            }
        }
    }
    assert!(kills >= 20, "only {kills} kills landed before the copy finished");
    eprintln!("{kills} kills, {planning_kills} of them while the run was planning (in parts)");
    assert!(kills - planning_kills >= 5, "only {} kills landed after planning", kills - planning_kills);
    crashed.ok(&["copy", "resume", run_id.as_deref().unwrap(), "--report", "report"]);
    assert!(crashed.ok(&["copy", "status", run_id.as_deref().unwrap()]).contains("state: done"));
    let (a, b) = (reference.cwd.path().join("export"), crashed.cwd.path().join("export"));
    reference.ok(&["site", "export", "demo-dst", &path(&a)]);
    crashed.ok(&["site", "export", "demo-dst", &path(&b)]);
    for (file, _) in ferry_snapshot::FILES {
        let (left, right) =
            (std::fs::read_to_string(a.join(file)).unwrap(), std::fs::read_to_string(b.join(file)).unwrap());
        assert!(left == right, "{file} differs after {kills} kills");
    }
    for file in ["RequiresAttention.csv", "Customers.csv"] {
        let left = std::fs::read_to_string(reference.cwd.path().join("report").join(file)).unwrap();
        let right = std::fs::read_to_string(crashed.cwd.path().join("report").join(file)).unwrap();
        assert!(left == right, "{file} differs");
    }
    integrity(&crashed);
}

fn the_story_remediated_from_the_command_line(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.story();
    let run = ferry.ok(&["copy", "run", "--from", "eu", "--to", "us", "--report", "out"]);
    assert!(run.starts_with("run 1\n"), "{run}");
    let pending = ferry.ok(&["group", "list", "us", "--pending"]);
    assert_eq!(
        pending,
        "customers-from-eu\tawaiting review\timported by run 1\t1 members\tprojects SUP\t1 requests gained on approval\n  chen@acme.test\n"
    );
    assert_eq!(ferry.ok(&["access", "us", "chen@acme.test"]), "");
    let approved = ferry.ok(&["group", "approve", "us", "customers-from-eu"]);
    assert!(approved.starts_with("approved group customers-from-eu\n"), "{approved}");
    assert!(ferry.ok(&["group", "approve", "us", "customers-from-eu"]).contains("already approved; nothing changed"));
    assert_eq!(ferry.ok(&["group", "list", "us", "--pending"]), "no imported groups need review\n");
    assert_eq!(ferry.ok(&["access", "us", "chen@acme.test"]), "SUP-3\n");
    assert!(ferry.ok(&["copy", "status", "1"]).contains("imported group: customers-from-eu (approved)\n"));

    let dry = ferry.ok(&["customer", "upgrade", "us", "--all-duplicates", "--dry-run"]);
    assert!(
        dry.contains("would upgrade fay@acme.test: portal-only po-fay-us -> Atlassian account aa-fay (existing); moves 1 requests reported"),
        "{dry}"
    );
    assert!(dry.ends_with("nothing was changed\n"), "{dry}");
    assert_eq!(ferry.ok(&["access", "us", "fay@acme.test"]), "SUP-6\n");
    ferry.ok(&["customer", "upgrade", "us", "fay@acme.test"]);
    assert_eq!(ferry.ok(&["access", "us", "fay@acme.test"]), "HR-1\nSUP-6\n");
    let again = ferry.ok(&["customer", "upgrade", "us", "fay@acme.test"]);
    assert!(again.contains("already upgraded fay@acme.test: merged into aa-fay"), "{again}");

    let refused = ferry.refused(&["copy", "rollback", "1"]);
    assert!(refused.contains("group customers-from-eu was approved"), "{refused}");
    assert!(refused.contains("customer fay@acme.test was upgraded"), "{refused}");
    assert!(ferry.refused(&["customer", "upgrade", "us", "nobody@acme.test"]).contains("nobody@acme.test"));
    assert!(ferry.refused(&["group", "decline", "us", "no-such-group"]).contains("no group named"));
    assert!(ferry.refused(&["audit", "--since", "last week"]).contains("--since"));

    let log = ferry.ok(&["audit", "--site", "us"]);
    let actions: Vec<&str> = log.lines().skip(1).map(|l| l.split('\t').nth(2).unwrap()).collect();
    assert_eq!(actions, ["site.create", "site.import", "copy.run", "group.approve", "customer.upgrade"]);
    assert!(log.lines().skip(1).all(|l| l.split('\t').nth(1) == Some("cli:tester")), "{log}");
    assert_eq!(ferry.ok(&["audit", "--since", "2999-01-01"]).lines().count(), 1, "header only");
    // A cell a spreadsheet would run is quoted.
    let out = ferry.run(&["customer", "upgrade", "us", "fay@acme.test"]).stdout;
    assert!(String::from_utf8(out).unwrap().contains("already upgraded"));
    let spoofed = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["org", "create", "evil"])
        .env("FERRY_DB", &ferry.db.url)
        .env("FERRY_ACTOR", "=HYPERLINK(\"x\")")
        .output()
        .unwrap();
    assert!(spoofed.status.success());
    let log = ferry.ok(&["audit"]);
    assert!(log.lines().last().unwrap().contains("\t'=HYPERLINK(\"x\")\torg.create\t"), "{log}");
}

/// Exports `sites` and reads every file: what a destination holds, ids
/// aside (snapshots name accounts by their external ids).
fn exports(ferry: &Ferry, sites: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for site in sites {
        let dir = ferry.cwd.path().join(format!("export-{site}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ferry.ok(&["site", "export", site, &path(&dir)]);
        for (file, _) in ferry_snapshot::FILES {
            files.push((format!("{site}/{file}"), std::fs::read_to_string(dir.join(file)).unwrap()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    files
}

fn assert_same(left: &[(String, String)], right: &[(String, String)], what: &str) {
    assert_eq!(left.len(), right.len());
    for ((file, a), (_, b)) in left.iter().zip(right) {
        assert!(a == b, "{what}: {file} differs from an undisturbed copy");
    }
}

fn integrity(ferry: &Ferry) {
    let mut store = ferry_store::Store::open_existing(&ferry.db.url).unwrap();
    ferry_testkit::assert_integrity(&mut store);
}

/// A `ferry …` process with its output captured (copies in chunks of a
/// thousand accounts).
fn spawn(ferry: &Ferry, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_DB", &ferry.db.url)
        .env("FERRY_COPY_CHUNK", "1000")
        .current_dir(ferry.cwd.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

const PAIRS: [(&str, &str); 3] = [("demo-src", "demo-dst"), ("demo-src", "demo-third"), ("eu", "us")];

/// The demo, a third site, and the story's two sites: three site pairs.
fn three_pairs(ferry: &Ferry) {
    ferry.ok(&["demo", "--customers", "20000", "--seed", "4"]);
    ferry.ok(&["site", "create", "demo", "demo-third"]);
    ferry.story();
}

/// Issue 13: several writers at once, with the real binary. Two copies of
/// different site pairs started at the same moment; a copy killed once
/// applying, then imports into other sites and other pairs' copies before
/// its resume; the same copy started twice at once. Every destination ends
/// as an undisturbed, one-at-a-time copy leaves it.
fn concurrent_writers_end_as_one_writer_at_a_time(backend: Backend) {
    use std::time::{Duration, Instant};
    let reference = Ferry::new(backend);
    three_pairs(&reference);
    for (from, to) in PAIRS {
        reference.ok(&["copy", "run", "--from", from, "--to", to, "--report", "r"]);
    }
    let sites = ["demo-dst", "demo-third", "us"];
    let want = exports(&reference, &sites);

    // Two site pairs started at the same moment.
    let together = Ferry::new(backend);
    three_pairs(&together);
    let children: Vec<_> = PAIRS[..2]
        .iter()
        .map(|(from, to)| spawn(&together, &["copy", "run", "--from", from, "--to", to, "--report", to]))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    together.ok(&["copy", "run", "--from", "eu", "--to", "us", "--report", "r"]);
    assert_same(&exports(&together, &sites), &want, "two pairs at once");
    integrity(&together);

    // Killed once applying; other writers; then resume.
    let killed = Ferry::new(backend);
    killed.ok(&["demo", "--customers", "20000", "--seed", "4"]);
    killed.ok(&["site", "create", "demo", "demo-third"]);
    let mut child = spawn(&killed, &["copy", "run", "--from", "demo-src", "--to", "demo-dst", "--report", "r"]);
    let started = Instant::now();
    loop {
        let status = killed.run(&["copy", "status", "1"]);
        if String::from_utf8_lossy(&status.stdout).contains("state: applying") {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(120), "the run never started applying");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(killed.ok(&["copy", "status", "1"]).contains("state: applying"));
    killed.story(); // imports into other sites
    killed.ok(&["copy", "run", "--from", "eu", "--to", "us", "--report", "r"]);
    killed.ok(&["copy", "run", "--from", "demo-src", "--to", "demo-third", "--report", "r"]);
    // Another run into the killed run's destination waits for it.
    let busy = killed.refused(&["copy", "run", "--from", "demo-src", "--to", "demo-dst"]);
    assert!(busy.contains("copy run 1 into site demo-dst is unfinished"), "{busy}");
    let busy = killed.refused(&["site", "import", "demo-dst", &path(&story_dir().join("us"))]);
    assert!(busy.contains("before importing into it"), "{busy}");
    let busy = killed.refused(&["customer", "upgrade", "demo-dst", "--all-duplicates"]);
    assert!(busy.contains("before upgrading accounts"), "{busy}");
    killed.ok(&["copy", "resume", "1", "--report", "r"]);
    assert_same(&exports(&killed, &sites), &want, "killed, other writes, resumed");
    integrity(&killed);

    // The same copy twice at once: one applies it; the other is refused
    // (the destination is busy) or, started after, finds nothing new.
    let twice = Ferry::new(backend);
    three_pairs(&twice);
    let children: Vec<_> = (0..2)
        .map(|i| {
            let report = format!("twice-{i}");
            spawn(&twice, &["copy", "run", "--from", "demo-src", "--to", "demo-dst", "--report", &report])
        })
        .collect();
    let mut applied = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => applied += 1,
            Some(2) => assert!(stderr.contains("is unfinished"), "{stderr}"),
            other => panic!("exit {other:?}: {stderr}"),
        }
    }
    assert!(applied >= 1);
    for (from, to) in &PAIRS[1..] {
        twice.ok(&["copy", "run", "--from", from, "--to", to, "--report", "r"]);
    }
    assert_same(&exports(&twice, &sites), &want, "the same copy twice at once");
    integrity(&twice);
}

/// Issue 13, 4-8: refused commands write nothing and print nothing to
/// stdout; a closed stdout never fails a run; resuming a finished run
/// changes nothing. Each is followed by the next ordinary command.
fn refusals_and_closed_pipes_leave_everything_usable(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.story();
    // A report folder that cannot be written: found out before any work.
    std::fs::write(ferry.cwd.path().join("blocker"), "a file, not a folder").unwrap();
    for command in ["check", "run"] {
        let out = ferry.run(&["copy", command, "--from", "eu", "--to", "us", "--report", "blocker/out"]);
        assert_eq!(out.status.code(), Some(1), "copy {command}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write report blocker/out"));
        assert!(out.stdout.is_empty(), "copy {command} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
    assert!(ferry.refused(&["copy", "status", "1"]).contains("no copy run 1"), "no run was started");
    assert_eq!(ferry.ok(&["access", "us", "chen@acme.test"]), "", "nothing was copied");
    // Refused before any output or folder.
    let out = ferry.run(&["site", "export", "nosite", "dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!ferry.cwd.path().join("dir").exists(), "a refused export made its folder");
    let out = ferry.run(&["customer", "list", "nosite"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{:?}", String::from_utf8_lossy(&out.stdout));

    // `| head -1`: the reader goes away after the first line, stderr too.
    ferry.ok(&["demo", "--customers", "3000", "--seed", "2"]);
    let (first, exit) = head_1(&ferry, &["copy", "run", "--from", "demo-src", "--to", "demo-dst"]);
    let run = first.trim().strip_prefix("run ").unwrap().to_owned();
    assert!(exit.success(), "a closed stdout failed the run: {exit:?}");
    assert!(ferry.ok(&["copy", "status", &run]).contains("state: done"));
    // With log lines on the closed stderr too.
    ferry.ok(&["site", "create", "demo", "logged"]);
    let (first, exit) = head_1(
        &ferry,
        &["--log", "debug", "copy", "run", "--from", "demo-src", "--to", "logged", "--report", "logged"],
    );
    let logged = first.trim().strip_prefix("run ").unwrap().to_owned();
    assert!(exit.success(), "a closed stderr with logs on failed the run: {exit:?}");
    assert!(ferry.ok(&["copy", "status", &logged]).contains("state: done"));
    ferry.ok(&["copy", "rollback", &logged]);

    // Resume of a finished run: says so, changes nothing, logs nothing.
    let entries = ferry.ok(&["audit"]).lines().count();
    let resumed = ferry.ok(&["copy", "resume", &run]);
    assert!(resumed.contains(&format!("run {run} is already done")), "{resumed}");
    assert!(!resumed.contains("awaits review"), "{resumed}");
    assert_eq!(ferry.ok(&["audit"]).lines().count(), entries);
    ferry.ok(&["copy", "rollback", &run]);
    assert!(ferry.refused(&["copy", "resume", &run]).contains("was rolled back"));
    // And the next ordinary command works.
    ferry.ok(&["copy", "run", "--from", "demo-src", "--to", "demo-dst", "--report", "again"]);
    ferry.ok(&["customer", "upgrade", "demo-dst", "--all-duplicates"]);
    // Long listings read by `head -1`: the command ends as usual.
    for args in [["customer", "list", "demo-dst"].as_slice(), &["audit"], &["group", "list", "demo-dst"]] {
        let (_, exit) = head_1(&ferry, args);
        assert!(exit.success(), "{args:?} | head -1: {exit:?}");
    }
}

/// `ferry <args> | head -1` with stderr closed too: the first line, and how
/// the command ended once its reader had gone.
fn head_1(ferry: &Ferry, args: &[&str]) -> (String, std::process::ExitStatus) {
    use std::io::{BufRead, BufReader};
    let mut child = spawn(ferry, args);
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    drop(child.stderr.take());
    (first, child.wait().unwrap())
}

/// Non-ASCII emails in every form the CLI takes them: an IDNA domain in
/// Unicode or `xn--`, NFD or NFC, any case, all one customer.
fn non_ascii_emails_are_one_customer_in_every_form(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.story();
    let dir = ferry.cwd.path().join("zoe");
    std::fs::create_dir_all(&dir).unwrap();
    // NFD in the snapshot, a Unicode domain; an Atlassian account with the
    // same address in NFC and the domain's `xn--` form.
    std::fs::write(
        dir.join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\n\
         po-zoe,customer,Zoe\u{308}.A\u{30a}ngstro\u{308}m@exämple.test,Zoë Ångström,true,true\n\
         aa-zoe,atlassian,zoë.ångström@xn--exmple-cua.test,Zoë Ångström,true,true\n",
    )
    .unwrap();
    std::fs::write(dir.join("customers.csv"), "project_key,account_id\nHR,po-zoe\n").unwrap();
    std::fs::write(
        dir.join("requests.csv"),
        "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
         HR-7,HR,Tjänst,Open,2026-02-07T09:00:00Z,po-zoe,,\n",
    )
    .unwrap();
    ferry.ok(&["site", "import", "us", &path(&dir)]);
    for spelling in ["ZOË.ÅNGSTRÖM@EXÄMPLE.TEST", "zoe\u{308}.a\u{30a}ngstro\u{308}m@xn--exmple-cua.test"] {
        assert_eq!(ferry.ok(&["access", "us", spelling, "--type", "portal-only"]), "HR-7\n", "{spelling}");
    }
    let duplicates = ferry.ok(&["customer", "list", "us", "--duplicates"]);
    assert_eq!(duplicates.lines().filter(|l| l.contains("ngstr")).count(), 2, "{duplicates}");
    let upgraded = ferry.ok(&["customer", "upgrade", "us", "ZOË.ÅNGSTRÖM@xn--exmple-cua.test"]);
    assert!(upgraded.contains("upgraded 1 accounts"), "{upgraded}");
    assert_eq!(ferry.ok(&["access", "us", "zoë.ångström@exämple.test"]), "HR-7\n");
    // The copy carries the customer to another site in the same way.
    ferry.ok(&["site", "create", "acme", "far"]);
    ferry.ok(&["copy", "run", "--from", "us", "--to", "far", "--report", "far"]);
    assert_eq!(ferry.ok(&["access", "far", "ZOE\u{308}.ÅNGSTRÖM@XN--EXMPLE-CUA.TEST"]), "HR-7\n");
}

/// `--log` (or RUST_LOG) turns on the engine's log lines on stderr; by
/// default a command's stderr holds only its errors; a level that is not
/// one is bad input; no line carries the database's password.
fn logs_follow_the_log_level_and_hold_no_secrets(backend: Backend) {
    let ferry = Ferry::new(backend);
    ferry.story();
    let quiet = ferry.run(&["copy", "check", "--from", "eu", "--to", "us"]);
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("INFO"), "{}", String::from_utf8_lossy(&quiet.stderr));
    let out = ferry.run(&["--log", "info", "copy", "run", "--from", "eu", "--to", "us", "--report", "r"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    for line in ["planning copy run", "copy run planned", "copy phase applied"] {
        assert!(log.contains(line), "{line} missing from {log}");
    }
    // A database URL with a password, at the most talkative level, on a
    // server that refuses it: neither the log nor the error holds it.
    for db in ["postgres://ferry:s3cret-pw@127.0.0.1:1/none", "postgres://postgres:s3cret-pw@127.0.0.1:5432/no_such_db"]
    {
        let out = ferry.run(&["--log", "trace", "--db", db, "audit"]);
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("***@127.0.0.1"), "{said}");
        assert!(!said.contains("s3cret-pw"), "the password reached stderr: {said}");
    }
    let refused = ferry.refused(&["--log", "ferry_copy=loud", "copy", "status", "1"]);
    assert!(refused.contains("--log"), "{refused}");
    // The next ordinary command works.
    assert!(ferry.ok(&["copy", "status", "1"]).contains("state: done"));
}

on_both_backends!(
    a_copy_planned_in_parts_from_the_setting,
    logs_follow_the_log_level_and_hold_no_secrets,
    non_ascii_emails_are_one_customer_in_every_form,
    concurrent_writers_end_as_one_writer_at_a_time,
    refusals_and_closed_pipes_leave_everything_usable,
    a_database_from_a_newer_ferry_is_refused_by_name,
    the_story_remediated_from_the_command_line,
    a_killed_copy_resumes_to_exactly_an_uninterrupted_copy,
    the_story_before_a_copy,
    a_bad_import_exits_2_names_every_row_and_writes_nothing,
    unknown_names_exit_2_with_what_to_do,
    demo_then_export_and_list,
    jira_cloud_sites_pull_and_check_from_the_command_line,
);

#[test]
fn the_default_store_is_ferry_db_in_the_working_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["org", "create", "acme"])
        .env_remove("FERRY_DB")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(cwd.path().join("ferry.db").is_file());
}

/// Issue 13, 5: a database setting that names no database is refused, and a
/// command that does not start a database never creates one (SQLite: the
/// only backend that creates its database).
#[test]
fn a_setting_that_names_no_database_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let ferry = |db: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command.args(args).current_dir(cwd.path());
        match db {
            Some(db) => command.env("FERRY_DB", db),
            None => command.env_remove("FERRY_DB"),
        };
        command.output().unwrap()
    };
    for (db, args) in [
        (None, vec!["--db", "", "org", "create", "ghost"]),
        (None, vec!["--db", "sqlite:", "org", "create", "ghost"]),
        (None, vec!["--db", ":memory:", "org", "create", "ghost"]),
        (Some(""), vec!["org", "create", "ghost"]),
    ] {
        let out = ferry(db, &args);
        assert_eq!(out.status.code(), Some(2), "{db:?} {args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("names no database"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
    for args in [["copy", "status", "1"].as_slice(), &["audit"], &["customer", "list", "eu"], &["group", "list", "eu"]]
    {
        let out = ferry(None, &[&["--db", "typo.db"], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("typo.db: no such database file"), "{args:?}");
    }
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "nothing was created");
    // The next ordinary command starts the database.
    assert!(ferry(None, &["--db", "typo.db", "org", "create", "acme"]).status.success());
    assert!(ferry(None, &["--db", "typo.db", "audit"]).status.success());
}

/// SPEC §8 through the binary: credentials only from the environment; a
/// site that does not exist is refused before any request; two pulled
/// sites check as the story says; `--out` writes a snapshot and opens no
/// database; a refused token exits 1 naming path and status, and neither
/// its error nor a trace-level log holds the token.
fn jira_cloud_sites_pull_and_check_from_the_command_line(backend: Backend) {
    use ferry_testkit::jira::{FakeJira, FakeOptions};
    let ferry = Ferry::new(backend);
    let options = FakeOptions::default();
    let (eu, us) = (
        FakeJira::start(&story_dir().join("eu"), options.clone()),
        FakeJira::start(&story_dir().join("us"), options.clone()),
    );
    let env = [
        ("JIRA_EMAIL", options.email.as_str()),
        ("JIRA_API_TOKEN", options.token.as_str()),
        ("ATLASSIAN_ADMIN_API_KEY", options.admin_key.as_str()),
    ];
    let pull = |site: &str, fake: &FakeJira, extra: &[&str], env: &[(&str, &str)]| {
        let url = fake.url();
        let mut args =
            vec!["site", "pull", site, "--jira", url.as_str(), "--org-id", "fake-org", "--admin-api", url.as_str()];
        args.extend_from_slice(extra);
        ferry.run_with(&args, env)
    };
    ferry.ok(&["org", "create", "acme"]);

    let out = pull("eu", &eu, &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JIRA_API_TOKEN"), "credentials come from the environment");
    let out = pull("eu", &eu, &[], &env);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(eu.stats().requests, 0, "an unknown site is refused before any request");

    ferry.ok(&["site", "create", "acme", "eu"]);
    ferry.ok(&["site", "create", "acme", "us"]);
    for (site, fake) in [("eu", &eu), ("us", &us)] {
        let out = pull(site, fake, &[], &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("into site {site}")) && stdout.contains("accounts.csv: "), "{stdout}");
        assert!(stdout.contains("email verification: read from the organization admin API"), "{stdout}");
    }
    assert_eq!(ferry.ok(&["access", "eu", "Chen@ACME.test"]), "SUP-3\n");
    let report = ferry.cwd.path().join("check");
    ferry.ok(&["copy", "check", "--from", "eu", "--to", "us", "--report", &path(&report)]);
    assert_eq!(
        std::fs::read_to_string(report.join("RequiresAttention.csv")).unwrap(),
        std::fs::read_to_string(story_dir().join("RequiresAttention.csv")).unwrap()
    );
    // Pulling again changes nothing, even with its output closed at once
    // (`… | head -0`): the pull and its import go on to their end.
    let before = ferry.ok(&["customer", "list", "eu"]);
    let url = eu.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["site", "pull", "eu", "--jira", &url, "--org-id", "fake-org", "--admin-api", &url])
        .env("FERRY_DB", &ferry.db.url)
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success(), "a closed output fails no pull");
    assert_eq!(ferry.ok(&["customer", "list", "eu"]), before);
    assert!(pull("eu", &eu, &[], &env).status.success());
    assert_eq!(ferry.ok(&["customer", "list", "eu"]), before);

    // --out: a snapshot folder, and no database is opened or created.
    let snapshot = ferry.cwd.path().join("snapshot");
    let nowhere = ferry.cwd.path().join("no.db");
    let url = us.url();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["site", "pull", "us", "--jira", &url, "--out", &path(&snapshot)])
        .env("FERRY_DB", &nowhere)
        .env("JIRA_EMAIL", &options.email)
        .env("JIRA_API_TOKEN", &options.token)
        .env_remove("ATLASSIAN_ADMIN_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("email verification: not read"), "{stdout}");
    assert!(!nowhere.exists(), "--out touches no database");
    let accounts = std::fs::read_to_string(snapshot.join("accounts.csv")).unwrap();
    assert!(accounts.starts_with("account_id,account_type,email,display_name,active,email_verified\n"));
    assert!(accounts.contains("aa-chen,atlassian,chen@acme.test,Chen,true,true"), "{accounts}");

    // A refused token: exit 1, path and status named, the token nowhere.
    let wrong = [
        ("JIRA_EMAIL", options.email.as_str()),
        ("JIRA_API_TOKEN", "s3cret-never-shown"),
        ("ATLASSIAN_ADMIN_API_KEY", options.admin_key.as_str()),
    ];
    let out = pull("eu", &eu, &["--log", "trace"], &wrong);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/rest/servicedeskapi/servicedesk answered 401"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    let basic = base64_of(&format!("{}:s3cret-never-shown", options.email));
    for secret in ["s3cret-never-shown", basic.as_str(), options.admin_key.as_str()] {
        assert!(!stderr.contains(secret), "{secret} leaked: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    }
    assert_eq!(ferry.ok(&["customer", "list", "eu"]), before, "a failed pull writes nothing");
}

/// Base64 (standard alphabet, padded) of `text`: how basic auth sends it.
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
