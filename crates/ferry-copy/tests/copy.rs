//! The copy engine on both backends: the seed's story, the matrix on demo
//! data, check against run, re-runs and blocking conflicts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use std::collections::BTreeMap;
use std::path::Path;

use ferry_copy::{CopyError, CopyOptions, OrganizationMode, Quiet};
use ferry_core::model::AccountType;
use ferry_snapshot::{export_site, import_site};
use ferry_store::{Store, Val, accounts, sites};
use ferry_testkit::{Backend, TestDb, access, on_both_backends, story_dir};

fn options(from: &str, to: &str) -> CopyOptions {
    CopyOptions::between(from, to)
}

fn story(store: &mut Store) {
    store
        .write(|tx| {
            sites::create_org(tx, "acme")?;
            sites::create_site(tx, "acme", "eu")?;
            sites::create_site(tx, "acme", "us")
        })
        .unwrap();
    import_site(store, "eu", &story_dir().join("eu"), &mut ferry_snapshot::Quiet).unwrap();
    import_site(store, "us", &story_dir().join("us"), &mut ferry_snapshot::Quiet).unwrap();
}

fn run(store: &mut Store, options: &CopyOptions) -> (i64, ferry_copy::ReportData) {
    let done = ferry_copy::run(store, options, &mut Quiet, |_| {}).unwrap();
    ferry_testkit::assert_counts_kept(store);
    done
}

fn export(store: &mut Store, site: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    export_site(store, site, dir.path()).unwrap();
    ferry_testkit::read_folder(dir.path())
}

fn the_story_copies_as_the_seed_says(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let (_, data) = run(&mut store, &options("eu", "us"));
    let out = tempfile::tempdir().unwrap();
    ferry_copy::write_report(&data, out.path()).unwrap();
    let expected = std::fs::read_to_string(story_dir().join("RequiresAttention.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("RequiresAttention.csv")).unwrap(), expected);
    // The table of examples/story/README.md, column "after the run".
    let table = [
        ("alice@acme.test", vec!["SUP-1"]),
        ("bruno@acme.test", vec!["SUP-2"]),
        ("chen@acme.test", vec![]),
        ("dana@acme.test", vec!["SUP-4"]),
        ("eli@acme.test", vec!["SUP-5"]),
        ("fay@acme.test", vec!["SUP-6"]),
    ];
    for (email, keys) in table {
        assert_eq!(access(&mut store, "us", email, None), keys, "{email}");
    }
    assert_eq!(access(&mut store, "us", "fay@acme.test", Some(AccountType::PortalOnly)), ["HR-1"]);
    // Requests keep their numbers and remember their source.
    let requests = export(&mut store, "us")["requests.csv"].clone();
    assert!(requests.contains("SUP-3,SUP,Laptop broken,Open,2026-03-03T09:00:00Z,aa-chen,,"), "{requests}");
    let customers = std::fs::read_to_string(out.path().join("Customers.csv")).unwrap();
    assert!(customers.starts_with(
        "Customer email,Account type on source,Account type on destination,Account type after copying,Outcome,Source account id,Destination account id\n"
    ));
    assert!(
        customers.contains("alice@acme.test,Portal-only,None,Portal-only,1: new portal-only account,po-alice,None"),
        "{customers}"
    );
    assert!(customers.contains("fay@acme.test,Atlassian account,Portal-only,Portal-only and Atlassian account,6: Atlassian account beside a portal-only account,aa-fay,po-fay-us"), "{customers}");
}

fn check_writes_the_files_run_writes(backend: Backend) {
    for seed in [1, 2, 3] {
        let db = TestDb::new(backend);
        let mut store = db.store();
        ferry_snapshot::demo::load_demo(&mut store, 240, seed, &mut ferry_snapshot::Quiet).unwrap();
        let before = export(&mut store, "demo-dst");
        let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options("demo-src", "demo-dst"))).unwrap();
        let predicted = tempfile::tempdir().unwrap();
        ferry_copy::write_plan_report(&plan, predicted.path()).unwrap();
        assert_eq!(export(&mut store, "demo-dst"), before, "check writes nothing");
        let (run_id, data) = run(&mut store, &options("demo-src", "demo-dst"));
        let actual = tempfile::tempdir().unwrap();
        ferry_copy::write_report(&data, actual.path()).unwrap();
        let (mut predicted, mut actual) =
            (ferry_testkit::read_folder(predicted.path()), ferry_testkit::read_folder(actual.path()));
        let (predicted_summary, actual_summary) =
            (predicted.remove("Summary.json").unwrap(), actual.remove("Summary.json").unwrap());
        assert_eq!(predicted, actual, "seed {seed}");
        let counts = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["counts"].clone();
        assert_eq!(counts(&predicted_summary), counts(&actual_summary));
        assert!(predicted_summary.contains("\"prediction\": true"));
        assert!(actual_summary.contains(&format!("\"run\": {run_id}")));
        // `copy report` rebuilds the same files from what the run stored.
        let rebuilt = tempfile::tempdir().unwrap();
        ferry_copy::write_run_report(&mut store, run_id, rebuilt.path()).unwrap();
        let mut rebuilt = ferry_testkit::read_folder(rebuilt.path());
        rebuilt.remove("Summary.json");
        assert_eq!(rebuilt, actual);
        // A run that writes its lines into the folder while it applies
        // (`copy run`) writes the same files, holding no line in memory.
        let other = TestDb::new(backend);
        let mut other_store = other.store();
        ferry_snapshot::demo::load_demo(&mut other_store, 240, seed, &mut ferry_snapshot::Quiet).unwrap();
        let streamed = tempfile::tempdir().unwrap();
        let dir_of = |_: i64| streamed.path().to_owned();
        let (_, data) = ferry_copy::run_reporting(
            &mut other_store,
            &options("demo-src", "demo-dst"),
            &mut Quiet,
            |_| {},
            Some(&dir_of),
        )
        .unwrap();
        assert!(data.customers.is_empty(), "the lines went to the files");
        let partial = ferry_testkit::read_folder(streamed.path());
        assert!(partial.keys().all(|name| name.ends_with(".partial")), "{:?}", partial.keys());
        ferry_copy::write_report(&data, streamed.path()).unwrap();
        let mut streamed = ferry_testkit::read_folder(streamed.path());
        let streamed_summary = streamed.remove("Summary.json").unwrap();
        assert_eq!(streamed, actual, "seed {seed}: lines written during the apply");
        assert_eq!(counts(&streamed_summary), counts(&actual_summary));
        // Every outcome of the matrix occurs, and the formula guard works.
        let customers = &actual["Customers.csv"];
        for n in 1..=6 {
            assert!(customers.contains(&format!("{n}: ")), "seed {seed}: no case {n}");
        }
        assert!(actual["RequiresAttention.csv"].contains("'=cmd."), "guarded cell");
        // SPEC §4: rows sorted by normalized email.
        for file in ["Customers.csv", "RequiresAttention.csv"] {
            let mut reader = csv::Reader::from_reader(actual[file].as_bytes());
            let keys: Vec<String> = reader
                .records()
                .map(|r| {
                    let cell = r.unwrap()[0].to_owned();
                    let unguarded = if cell.starts_with("'=") { &cell[1..] } else { &cell[..] };
                    ferry_core::email::normalize(unguarded).unwrap()
                })
                .collect();
            assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{file} is not sorted by normalized email");
        }
    }
}

fn every_customer_ends_with_the_account_types_reported(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 300, 9, &mut ferry_snapshot::Quiet).unwrap();
    // The destination's accounts before the copy, by email: the ids a
    // report's destination column may name.
    let mut before: BTreeMap<String, Vec<String>> = BTreeMap::new();
    store
        .read(|tx| {
            let site = sites::site(tx, "demo-dst")?;
            accounts::each_customer(tx, site.id, Default::default(), |c| {
                before.entry(c.email_key).or_default().push(c.account_id);
                Ok(())
            })
        })
        .unwrap();
    let (_, data) = run(&mut store, &options("demo-src", "demo-dst"));
    use ferry_core::plan::Outcome::*;
    for c in &data.customers {
        let named = c.destination_ext_id.as_ref();
        if matches!(c.outcome, ExistingPortalOnly | MatchedAtlassian | ExistingSiteUser | BesidePortalOnly) {
            assert!(named.is_some(), "{} ({:?}) names no destination account", c.email, c.outcome);
        }
        if let Some(id) = named {
            let theirs = before.get(&c.email_key).map(Vec::as_slice).unwrap_or_default();
            assert!(theirs.contains(id), "{}: {id} is not the destination's account for the email", c.email);
        }
        if c.outcome == NewSiteUser {
            assert_eq!(named, None, "{}", c.email);
        }
    }
    let mut held: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    store
        .read(|tx| {
            let site = sites::site(tx, "demo-dst")?;
            accounts::each_customer(tx, site.id, Default::default(), |c| {
                let entry = held.entry(c.email_key).or_default();
                match c.account_type {
                    AccountType::PortalOnly => entry.0 = true,
                    AccountType::Atlassian => entry.1 = true,
                }
                Ok(())
            })
        })
        .unwrap();
    for c in &data.customers {
        let (portal, atlassian) = held.get(&c.email_key).copied().unwrap_or_default();
        assert_eq!(ferry_core::plan::TypesHeld::of(portal, atlassian), c.after, "{}", c.email);
    }
    let pending: usize =
        data.customers.iter().filter(|c| c.outcome == ferry_core::plan::Outcome::MatchedAtlassian).count();
    assert!(pending > 0);
    // Case 3 customers cannot see their copied requests until approval.
    for c in data.customers.iter().filter(|c| c.outcome == ferry_core::plan::Outcome::MatchedAtlassian).take(5) {
        let keys = access(&mut store, "demo-dst", &c.email, Some(AccountType::Atlassian));
        assert!(keys.iter().all(|k| k.starts_with("DESK-")), "{}: {keys:?}", c.email);
    }
}

fn a_run_right_after_a_run_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 200, 5, &mut ferry_snapshot::Quiet).unwrap();
    let (_, first) = run(&mut store, &options("demo-src", "demo-dst"));
    let after_first = export(&mut store, "demo-dst");
    let (second_run, second) = run(&mut store, &options("demo-src", "demo-dst"));
    assert_eq!(export(&mut store, "demo-dst"), after_first);
    assert_eq!(second.requests, 0);
    // A re-run decides only what no earlier run copied: here nothing. The
    // scope's customers are counted as already copied, not listed again.
    assert!(second.customers.is_empty(), "{:?}", second.customers.first());
    assert_eq!(second.already_copied, first.customers.len() as u64);
    let already = ferry_core::plan::Outcome::AlreadyCopied;
    assert_eq!(second.outcome_count(already), first.customers.len() as u64);
    assert_eq!(second.summary()["counts"]["already_copied"], first.customers.len());
    assert_eq!(second.summary()["counts"]["customers"], first.customers.len());
    assert!(second.requires_attention().is_empty());
    assert_eq!(second.group_name, None, "no second imported group");
    // `copy report` of the re-run says the same.
    let rebuilt = ferry_copy::run_report(&mut store, second_run).unwrap();
    assert_eq!(rebuilt.already_copied, second.already_copied);
}

fn a_rerun_copies_only_what_is_new(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    run(&mut store, &options("eu", "us"));
    let more = tempfile::tempdir().unwrap();
    std::fs::write(
        more.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\npo-gus,customer,gus@acme.test,Gus,true,true\n",
    )
    .unwrap();
    std::fs::write(more.path().join("customers.csv"), "project_key,account_id\nSUP,po-gus\n").unwrap();
    std::fs::write(
        more.path().join("requests.csv"),
        "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
         SUP-7,SUP,Printer,Open,2026-04-01T09:00:00Z,po-gus,,\n\
         SUP-8,SUP,Second one,Open,2026-04-02T09:00:00Z,po-alice,po-gus,\n",
    )
    .unwrap();
    import_site(&mut store, "eu", more.path(), &mut ferry_snapshot::Quiet).unwrap();
    let (second_run, second) = run(&mut store, &options("eu", "us"));
    assert_eq!(second.requests, 2);
    assert_eq!(ferry_copy::status(&mut store, second_run).unwrap().requests_copied, 2, "this run's own count");
    let new: Vec<&str> = second
        .customers
        .iter()
        .filter(|c| c.outcome != ferry_core::plan::Outcome::AlreadyCopied)
        .map(|c| c.email.as_str())
        .collect();
    assert_eq!(new, ["gus@acme.test"]);
    let listed: Vec<&str> = second.customers.iter().map(|c| c.email.as_str()).collect();
    assert_eq!(listed, ["gus@acme.test"], "a re-run lists only what it decided");
    assert!(second.already_copied > 0);
    assert_eq!(access(&mut store, "us", "gus@acme.test", None), ["SUP-7", "SUP-8"]);
    assert_eq!(access(&mut store, "us", "alice@acme.test", None), ["SUP-1", "SUP-8"]);
    let requests = export(&mut store, "us")["requests.csv"].clone();
    assert_eq!(requests.matches("SUP-1,").count(), 1, "nothing duplicated: {requests}");
}

fn blocking_conflicts_stop_the_run_before_anything_is_written(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let taken = tempfile::tempdir().unwrap();
    std::fs::write(
        taken.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\n",
    )
    .unwrap();
    std::fs::write(taken.path().join("projects.csv"), "project_key,name\nSUP,Their support\n").unwrap();
    import_site(&mut store, "us", taken.path(), &mut ferry_snapshot::Quiet).unwrap();
    let before = export(&mut store, "us");
    let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options("eu", "us"))).unwrap();
    assert_eq!(plan.conflicts.len(), 1);
    let checked = store.read(|tx| ferry_copy::check_conflicts(tx, &options("eu", "us"))).unwrap();
    assert_eq!(checked, plan.conflicts, "the check without customers finds what the plan finds");
    let report = tempfile::tempdir().unwrap();
    ferry_copy::write_plan_report(&plan, report.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(report.path().join("Conflicts.csv")).unwrap(),
        "Kind,Source,Destination,Problem,Resolution\nproject,SUP,SUP,Project key SUP already exists on us,Rename it: --rename SUP=<NEW KEY>\n"
    );
    match ferry_copy::run(&mut store, &options("eu", "us"), &mut Quiet, |_| {}) {
        Err(CopyError::Conflicts(conflicts)) => assert!(conflicts[0].resolution.contains("--rename SUP=")),
        other => panic!("expected a blocking conflict, got {other:?}"),
    }
    assert_eq!(export(&mut store, "us"), before, "nothing written");
    let mut renamed = options("eu", "us");
    renamed.renames.insert("SUP".into(), "EUSUP".into());
    assert_eq!(store.read(|tx| ferry_copy::check_conflicts(tx, &renamed)).unwrap(), []);
    run(&mut store, &renamed);
    assert_eq!(access(&mut store, "us", "alice@acme.test", None), ["EUSUP-1"], "the number is kept");
}

fn organizations_link_conflict_or_merge(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let orgs = tempfile::tempdir().unwrap();
    std::fs::write(
        orgs.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\n",
    )
    .unwrap();
    std::fs::write(
        orgs.path().join("organizations.csv"),
        "organization,account_id\nAcme,po-alice\nAcme,po-bruno\nGlobex,po-chen\n",
    )
    .unwrap();
    std::fs::write(orgs.path().join("organization_projects.csv"), "organization,project_key\nAcme,SUP\nGlobex,SUP\n")
        .unwrap();
    import_site(&mut store, "eu", orgs.path(), &mut ferry_snapshot::Quiet).unwrap();
    // On us: Acme with other members (a conflict), Globex... the same member by email (linked).
    let us = tempfile::tempdir().unwrap();
    std::fs::write(
        us.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\n",
    )
    .unwrap();
    std::fs::write(us.path().join("organizations.csv"), "organization,account_id\nAcme,po-fay-us\nGlobex,aa-chen\n")
        .unwrap();
    import_site(&mut store, "us", us.path(), &mut ferry_snapshot::Quiet).unwrap();
    let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options("eu", "us"))).unwrap();
    assert_eq!(plan.conflicts.len(), 1, "{:?}", plan.conflicts);
    let checked = store.read(|tx| ferry_copy::check_conflicts(tx, &options("eu", "us"))).unwrap();
    assert_eq!(checked, plan.conflicts, "the check without customers finds what the plan finds");
    assert_eq!(plan.conflicts[0].kind, "organization");
    assert!(plan.conflicts[0].resolution.contains("--organizations merge"));
    let mut merge = options("eu", "us");
    merge.organizations = OrganizationMode::Merge;
    assert_eq!(store.read(|tx| ferry_copy::check_conflicts(tx, &merge)).unwrap(), []);
    run(&mut store, &merge);
    let organizations = export(&mut store, "us")["organizations.csv"].clone();
    assert_eq!(organizations.matches("Globex").count(), 1, "same members: linked, not duplicated: {organizations}");
    assert!(organizations.contains("Acme,po-fay-us"), "{organizations}");
    assert!(organizations.contains("Acme,po-bruno-us"), "merged: {organizations}");
}

fn rollback_removes_what_the_run_created_and_revokes_what_it_granted(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 250, 8, &mut ferry_snapshot::Quiet).unwrap();
    // A copy of the same source to a third site, whose links must survive.
    store.write(|tx| sites::create_site(tx, ferry_snapshot::demo::ORG, "demo-third")).unwrap();
    let (third_run, third) = run(&mut store, &options("demo-src", "demo-third"));
    let before = export(&mut store, "demo-dst");
    let (run_id, data) = run(&mut store, &options("demo-src", "demo-dst"));
    assert!(data.requests > 0);
    assert_eq!(ferry_copy::status(&mut store, run_id).unwrap().requests_copied, data.requests);
    assert_ne!(export(&mut store, "demo-dst"), before);
    let summary = ferry_copy::rollback(&mut store, run_id).unwrap();
    assert_eq!(summary.requests, data.requests);
    assert!(summary.accounts > 0 && summary.grants > 0 && summary.projects == 2);
    assert_eq!(export(&mut store, "demo-dst"), before, "the destination is as it was");
    assert_eq!(ferry_copy::status(&mut store, run_id).unwrap().requests_copied, 0);
    assert!(ferry_copy::rollback(&mut store, run_id).is_err(), "only once");
    // The other site pair's run is untouched: its count, and its links (a
    // run right after it copies nothing).
    assert_eq!(ferry_copy::status(&mut store, third_run).unwrap().requests_copied, third.requests);
    let (_, third_again) = run(&mut store, &options("demo-src", "demo-third"));
    assert_eq!(third_again.requests, 0);
    // The same copy can be run again afterwards, and lands the same way.
    let (_, again) = run(&mut store, &options("demo-src", "demo-dst"));
    assert_eq!(again.requests, data.requests);
    assert_eq!(again.requires_attention(), data.requires_attention());
    ferry_testkit::assert_integrity(&mut store);
}

fn rollback_refuses_when_later_changes_depend_on_the_run(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let (first, _) = run(&mut store, &options("eu", "us"));
    // A customer the run created raises a new request on the destination.
    let later = tempfile::tempdir().unwrap();
    std::fs::write(
        later.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified
",
    )
    .unwrap();
    std::fs::write(
        later.path().join("requests.csv"),
        "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization
         SUP-9,SUP,Raised later,Open,2026-05-01T09:00:00Z,po-alice,,
",
    )
    .unwrap();
    import_site(&mut store, "us", later.path(), &mut ferry_snapshot::Quiet).unwrap();
    // The admin approved the imported group.
    store.write(|tx| tx.execute("UPDATE groups SET state = 'active' WHERE name = 'customers-from-eu'", &[])).unwrap();
    // And a later run copied between the same sites.
    let more = tempfile::tempdir().unwrap();
    std::fs::write(
        more.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified
po-gus,customer,gus@acme.test,Gus,true,true
",
    )
    .unwrap();
    std::fs::write(
        more.path().join("customers.csv"),
        "project_key,account_id
SUP,po-gus
",
    )
    .unwrap();
    import_site(&mut store, "eu", more.path(), &mut ferry_snapshot::Quiet).unwrap();
    let (second, _) = run(&mut store, &options("eu", "us"));
    let before = export(&mut store, "us");
    match ferry_copy::rollback(&mut store, first) {
        Err(CopyError::RollbackRefused { blockers, .. }) => {
            let all = blockers.join("\n");
            assert!(all.contains(&format!("run {second} copied between the same sites")), "{all}");
            assert!(all.contains("group customers-from-eu was approved"), "{all}");
            assert!(all.contains("request SUP-9 was raised after this run"), "{all}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(export(&mut store, "us"), before, "a refused rollback changes nothing");
    ferry_copy::rollback(&mut store, second).unwrap();
}

fn both_types_on_the_source_show_both_after_copying(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let twin = tempfile::tempdir().unwrap();
    std::fs::write(
        twin.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\npo-dana,customer,Dana@acme.test,Dana,true,true\n",
    )
    .unwrap();
    std::fs::write(twin.path().join("customers.csv"), "project_key,account_id\nSUP,po-dana\n").unwrap();
    import_site(&mut store, "eu", twin.path(), &mut ferry_snapshot::Quiet).unwrap();
    let (_, data) = run(&mut store, &options("eu", "us"));
    let dana: Vec<_> = data.customers.iter().filter(|c| c.email_key == "dana@acme.test").collect();
    assert_eq!(dana.len(), 2);
    assert!(dana.iter().all(|c| c.after == ferry_core::plan::TypesHeld::Both), "{dana:?}");
}

/// A progress that stops the run where a crash would: by panicking inside
/// the transaction of the first chunk of `phase`, which then rolls back.
struct StopAt(&'static str);

impl ferry_copy::Progress for StopAt {
    fn step(&mut self, phase: &str, _: u64, _: u64) {
        if phase == self.0 {
            panic!("interrupted at {phase} (on purpose)");
        }
    }
}

/// Starts a run and interrupts it in its first accounts chunk, after its
/// decisions (and the ids they reserve) were written; the connection goes
/// as a killed process's would. The run's id.
fn interrupted_run(db: &TestDb, options: &CopyOptions) -> i64 {
    let mut store = db.store();
    let mut id = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ferry_copy::run(&mut store, options, &mut StopAt("accounts"), |run| id = run)
    }));
    assert!(result.is_err(), "the run was to be interrupted");
    drop(store);
    let mut store = db.store();
    assert_eq!(ferry_copy::status(&mut store, id).unwrap().state, ferry_core::run::RunState::Applying);
    ferry_testkit::assert_counts_kept(&mut store);
    id
}

/// Issue 13, 1: ids a run reserved when it planned are never handed out
/// again, whatever other writers do before it resumes.
fn a_resumed_run_never_takes_ids_another_writer_took(backend: Backend) {
    let reference = TestDb::new(backend);
    let mut undisturbed = reference.store();
    ferry_snapshot::demo::load_demo(&mut undisturbed, 400, 5, &mut ferry_snapshot::Quiet).unwrap();
    story(&mut undisturbed);
    run(&mut undisturbed, &options("demo-src", "demo-dst"));
    run(&mut undisturbed, &options("eu", "us"));

    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 400, 5, &mut ferry_snapshot::Quiet).unwrap();
    drop(store);
    let run_id = interrupted_run(&db, &options("demo-src", "demo-dst"));
    let mut store = db.store();
    // Other writers before the resume: imports into other sites (new
    // accounts, projects, organizations) and another site pair's copy.
    story(&mut store);
    run(&mut store, &options("eu", "us"));
    let data = ferry_copy::resume(&mut store, run_id, &mut Quiet).unwrap();
    assert_eq!(data.state, "done");
    for site in ["demo-dst", "us"] {
        assert_eq!(export(&mut store, site), export(&mut undisturbed, site), "{site}");
    }
    ferry_testkit::assert_integrity(&mut store);
}

/// Issue 13, 2: a run that cannot go on ends `failed` with its error, is
/// not resumed again, can be rolled back, and blocks nothing after.
fn a_run_that_cannot_go_on_ends_failed_and_blocks_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    drop(store);
    let run_id = interrupted_run(&db, &options("eu", "us"));
    let mut store = db.store();
    // While it is unfinished, no other run into the same site starts.
    match ferry_copy::run(&mut store, &options("eu", "us"), &mut Quiet, |_| panic!("no run may start")) {
        Err(CopyError::DestinationBusy { run, site }) => assert_eq!((run, site.as_str()), (run_id, "us")),
        other => panic!("expected the destination to be busy, got {:?}", other.map(|(id, _)| id)),
    }
    // The source changes under the run: a request gains a participant the
    // run never planned for.
    let changed = tempfile::tempdir().unwrap();
    std::fs::write(
        changed.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\npo-zed,customer,zed@acme.test,Zed,true,true\n",
    )
    .unwrap();
    std::fs::write(
        changed.path().join("requests.csv"),
        "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
         SUP-1,SUP,Cannot log in,Open,2026-03-01T09:00:00Z,po-alice,po-zed,\n",
    )
    .unwrap();
    import_site(&mut store, "eu", changed.path(), &mut ferry_snapshot::Quiet).unwrap();
    let report = tempfile::tempdir().unwrap();
    let error = ferry_copy::resume_reporting(&mut store, run_id, &mut Quiet, Some(report.path())).unwrap_err();
    assert!(error.to_string().contains("the source changed during the run"), "{error}");
    // The report lines it began writing are gone: no half report.
    assert_eq!(ferry_testkit::read_folder(report.path()), BTreeMap::new());
    let status = ferry_copy::status(&mut store, run_id).unwrap();
    assert_eq!(status.state, ferry_core::run::RunState::Failed);
    assert!(status.error.as_deref().unwrap_or_default().contains("the source changed"), "{status:?}");
    assert!(status.finished_at.is_some());
    // Resume refuses and writes nothing, not even an audit entry.
    let audit = |store: &mut Store| store.read(|tx| ferry_store::audit::list(tx, None, None)).unwrap().len();
    let entries = audit(&mut store);
    match ferry_copy::resume(&mut store, run_id, &mut Quiet) {
        Err(CopyError::NotResumable { state, message, .. }) => {
            assert_eq!(state, ferry_core::run::RunState::Failed);
            assert!(message.contains(&format!("ferry copy rollback {run_id}")), "{message}");
        }
        other => panic!("a failed run was resumed: {:?}", other.map(|d| d.state)),
    }
    assert_eq!(audit(&mut store), entries);
    // A failed run blocks no other work: a new run into the same site
    // starts and finishes (it builds on the chunks the failed one applied)...
    let (later, data) = run(&mut store, &options("eu", "us"));
    assert_eq!(data.state, "done");
    ferry_testkit::assert_integrity(&mut store);
    // ...and rollback removes what each wrote, the later run first.
    assert!(matches!(ferry_copy::rollback(&mut store, run_id), Err(CopyError::RollbackRefused { .. })));
    ferry_copy::rollback(&mut store, later).unwrap();
    ferry_copy::rollback(&mut store, run_id).unwrap();
    let (_, data) = run(&mut store, &options("eu", "us"));
    assert_eq!(data.state, "done");
    ferry_testkit::assert_integrity(&mut store);
}

/// Issue 13, 2: options that cannot work are refused before any run
/// exists; nothing is written, and the next ordinary run is run 1.
fn refused_plans_leave_no_run_behind(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let with = |change: &dyn Fn(&mut CopyOptions)| {
        let mut o = options("eu", "us");
        change(&mut o);
        o
    };
    let refused = [
        with(&|o| o.projects = Some(vec!["NOPE".to_owned()])),
        with(&|o| o.projects = Some(vec![String::new()])),
        with(&|o| {
            o.renames.insert("NOPE".to_owned(), "NEW".to_owned());
        }),
        with(&|o| {
            o.renames.insert("SUP".to_owned(), "bad key".to_owned());
        }),
        options("eu", "eu"),
        options("eu", "nowhere"),
    ];
    let audit = |store: &mut Store| store.read(|tx| ferry_store::audit::list(tx, None, None)).unwrap().len();
    let entries = audit(&mut store);
    for plan in &refused {
        let result = ferry_copy::run(&mut store, plan, &mut Quiet, |id| panic!("run {id} was started for {plan:?}"));
        assert!(matches!(result, Err(CopyError::Invalid(_) | CopyError::Store(_))), "{plan:?}");
        assert!(ferry_copy::list_runs(&mut store).unwrap().is_empty(), "{plan:?} left a run");
    }
    assert_eq!(audit(&mut store), entries, "no audit entry for a refused run");
    let (id, data) = run(&mut store, &options("eu", "us"));
    assert_eq!((id, data.state.as_str()), (1, "done"));
}

/// Issue 13, 3: for random demo sites after a copy (its imported group
/// awaiting review, approved or declined), export then import into a new
/// site gives every customer exactly the access it had.
fn export_then_import_gives_every_customer_the_same_access(backend: Backend) {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config { cases: 4, failure_persistence: None, ..Config::default() });
    let cases = (1u64..100_000, 11u64..90);
    runner
        .run(&cases, |(seed, customers)| {
            let db = TestDb::new(backend);
            let mut store = db.store();
            ferry_snapshot::demo::load_demo(&mut store, customers, seed, &mut ferry_snapshot::Quiet).unwrap();
            run(&mut store, &options("demo-src", "demo-dst"));
            let mut seen_access = 0;
            // Every review state of the imported group, in every case.
            for state in ["awaiting_review", "active", "declined"] {
                store
                    .write(|tx| {
                        tx.execute("UPDATE groups SET state = $1 WHERE created_by_run IS NOT NULL", &[state.into()])
                    })
                    .unwrap();
                let dir = tempfile::tempdir().unwrap();
                export_site(&mut store, "demo-dst", dir.path()).unwrap();
                let again = format!("demo-{}", state.replace('_', "-"));
                store.write(|tx| sites::create_site(tx, ferry_snapshot::demo::ORG, &again)).unwrap();
                import_site(&mut store, &again, dir.path(), &mut ferry_snapshot::Quiet).unwrap();
                let accounts = store
                    .read(|tx| {
                        let site = sites::site(tx, "demo-dst")?;
                        tx.query_all(
                            "SELECT email, kind FROM accounts WHERE site_id = $1 AND merged_into IS NULL
                             UNION SELECT a.email, a.kind FROM site_users su JOIN accounts a ON a.id = su.account_id
                             WHERE su.site_id = $1",
                            &[site.id.into()],
                            |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
                        )
                    })
                    .unwrap();
                assert!(!accounts.is_empty());
                for (email, kind) in &accounts {
                    let kind = AccountType::from_jira_value(kind);
                    let before = access(&mut store, "demo-dst", email, kind);
                    let after = access(&mut store, &again, email, kind);
                    assert_eq!(before, after, "{email} ({kind:?}), group {state}, seed {seed}, {customers} customers");
                    seen_access += before.len();
                }
            }
            assert!(seen_access > 0, "someone can see something");
            Ok(())
        })
        .unwrap();
}

/// Rollback never pulls accounts from under a later run from another
/// source that matched them by email, nor from under an unfinished one.
fn rollback_refuses_while_another_sources_run_builds_on_its_accounts(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let (first, _) = run(&mut store, &options("eu", "us"));
    store.write(|tx| sites::create_site(tx, "acme", "apac")).unwrap();
    let apac = tempfile::tempdir().unwrap();
    std::fs::write(
        apac.path().join("accounts.csv"),
        "account_id,account_type,email,display_name,active,email_verified\npo-alice-apac,customer,ALICE@acme.test,Alice,true,true\n",
    )
    .unwrap();
    std::fs::write(apac.path().join("projects.csv"), "project_key,name\nAP,Asia\n").unwrap();
    std::fs::write(apac.path().join("customers.csv"), "project_key,account_id\nAP,po-alice-apac\n").unwrap();
    import_site(&mut store, "apac", apac.path(), &mut ferry_snapshot::Quiet).unwrap();
    let (second, _) = run(&mut store, &options("apac", "us"));
    match ferry_copy::rollback(&mut store, first) {
        Err(CopyError::RollbackRefused { blockers, .. }) => {
            assert!(
                blockers
                    .iter()
                    .any(|b| b.contains(&format!("run {second} copied customers onto accounts this run created"))),
                "{blockers:?}"
            );
        }
        other => panic!("rolled back under a later run: {other:?}"),
    }
    ferry_copy::rollback(&mut store, second).unwrap();
    ferry_copy::rollback(&mut store, first).unwrap();
    ferry_testkit::assert_integrity(&mut store);
}

/// The schema's CHECKs hold exactly ferry's typed values: every run state,
/// phase and group state is stored, anything else is refused.
fn the_schema_holds_exactly_the_typed_states(backend: Backend) {
    use ferry_core::model::GroupState;
    use ferry_core::run::{Phase, RunState};
    use ferry_store::Val;
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let options = serde_json::to_string(&options("eu", "us")).unwrap();
    let run = |store: &mut Store, state: &str, phase: i64| {
        store.write(|tx| {
            tx.execute(
                "INSERT INTO copy_runs (source_site_id, destination_site_id, options, state, phase, started_at)
                 SELECT s.id, d.id, $4, $1, $2, $3 FROM sites s, sites d WHERE s.slug = 'eu' AND d.slug = 'us'",
                &[Val::T(state), Val::I(phase), Val::T(&ferry_core::model::now()), Val::T(&options)],
            )
        })
    };
    for state in RunState::ALL {
        assert_eq!(run(&mut store, state.as_str(), 0).unwrap(), 1, "{state}");
    }
    for phase in Phase::ALL {
        assert_eq!(run(&mut store, "done", phase.code()).unwrap(), 1, "{phase:?}");
    }
    assert!(run(&mut store, "paused", 0).is_err(), "a state ferry does not know");
    assert!(run(&mut store, "done", 5).is_err(), "a phase ferry does not know");
    let group = |store: &mut Store, name: &str, state: &str| {
        store.write(|tx| {
            tx.execute(
                "INSERT INTO groups (id, site_id, name, name_key, state)
                 SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM groups), id, $1, $1, $2 FROM sites WHERE slug = 'us'",
                &[Val::T(name), Val::T(state)],
            )
        })
    };
    for state in GroupState::ALL {
        assert_eq!(group(&mut store, &format!("g-{}", state.as_str()), state.as_str()).unwrap(), 1);
    }
    assert!(group(&mut store, "g-pending", "pending").is_err());
    // Every run reads back as the state it holds.
    let runs = ferry_copy::list_runs(&mut store).unwrap();
    assert_eq!(runs.len(), RunState::ALL.len() + Phase::ALL.len());
    let states: Vec<RunState> = runs.iter().rev().take(RunState::ALL.len()).map(|r| r.state).collect();
    assert_eq!(states, RunState::ALL);
}

/// SPEC §7, §8: an account whose email its site hides has an empty email.
/// It is never matched by email (a hidden portal-only customer is copied as
/// a new account even though the destination has an Atlassian account that
/// may be the same person), only by id (the same Atlassian account stays
/// itself); the check counts and names the uncertain customers; a site that
/// hides the email of an Atlassian account ferry knows keeps the email.
fn hidden_emails_are_never_matched_and_make_outcomes_uncertain(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    store
        .write(|tx| {
            sites::create_org(tx, "acme")?;
            sites::create_site(tx, "acme", "src")?;
            sites::create_site(tx, "acme", "dst")
        })
        .unwrap();
    let write = |dir: &Path, files: &[(&str, &str)]| {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    };
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(
        dst.path(),
        &[
            (
                "accounts.csv",
                "account_id,account_type,email,display_name,active,email_verified\n\
                 aa-kim,atlassian,kim@acme.test,Kim,true,true\n\
                 aa-lee,atlassian,Lee@Acme.test,Lee,true,false\n\
                 po-hid-dst,customer,,Hidden on dst,true,true\n",
            ),
            ("projects.csv", "project_key,name\nDESK,Desk\n"),
        ],
    );
    write(
        src.path(),
        &[
            (
                "accounts.csv",
                "account_id,account_type,email,display_name,active,email_verified\n\
                 po-kim,customer,,Kim,true,true\n\
                 po-zed,customer,,Zed,true,true\n\
                 aa-lee,atlassian,,Lee,true,true\n\
                 po-ann,customer,ann@acme.test,Ann,true,true\n",
            ),
            ("projects.csv", "project_key,name\nSUP,Support\n"),
            ("customers.csv", "project_key,account_id\nSUP,po-kim\nSUP,po-zed\nSUP,aa-lee\nSUP,po-ann\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
                 SUP-1,SUP,Help,Open,2026-03-01T09:00:00Z,po-kim,,\n",
            ),
        ],
    );
    import_site(&mut store, "dst", dst.path(), &mut ferry_snapshot::Quiet).unwrap();
    import_site(&mut store, "src", src.path(), &mut ferry_snapshot::Quiet).unwrap();
    // The Atlassian account stays as the destination shows it: email, its
    // spelling and its verification (the hiding site cannot know them).
    let accounts = export(&mut store, "src")["accounts.csv"].clone();
    assert!(accounts.contains("aa-lee,atlassian,Lee@Acme.test,Lee,true,false"), "{accounts}");
    assert!(export(&mut store, "dst")["accounts.csv"].contains("aa-lee,atlassian,Lee@Acme.test,Lee,true,false"));
    assert!(accounts.contains("po-kim,customer,,Kim,true,true"), "{accounts}");
    // Importing the same snapshot again changes nothing.
    let before = export(&mut store, "src");
    import_site(&mut store, "src", src.path(), &mut ferry_snapshot::Quiet).unwrap();
    assert_eq!(export(&mut store, "src"), before);

    let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options("src", "dst"))).unwrap();
    let outcome = |id: &str| {
        let c = plan.customers.iter().find(|c| c.ext_id == id).unwrap();
        (c.decision.outcome.label(), c.decision.problems.len())
    };
    // po-kim may be aa-kim (kim@acme.test) but is never linked by email.
    assert_eq!(outcome("po-kim"), ("1: new portal-only account", 0));
    assert_eq!(outcome("po-zed"), ("1: new portal-only account", 0));
    assert_eq!(outcome("aa-lee").0, "5: Atlassian account already a site user");
    let data = ferry_copy::ReportData::from_plan(&plan, ferry_copy::ReportKind::Prediction);
    let summary = data.summary();
    assert_eq!(summary["uncertain"]["customers"], 2, "{summary}");
    assert_eq!(summary["uncertain"]["source_account_ids"], serde_json::json!(["po-kim", "po-zed"]));
    assert_eq!(summary["uncertain"]["destination_accounts_with_hidden_email"], 1);

    // The copy runs: both hidden customers become new portal-only accounts
    // with hidden emails, and keep their requests.
    let (_, data) = run(&mut store, &options("src", "dst"));
    assert_eq!(data.uncertain().len(), 2);
    let accounts = export(&mut store, "dst")["accounts.csv"].clone();
    assert_eq!(accounts.lines().filter(|l| l.contains(",customer,,")).count(), 3, "{accounts}");
    let requests = export(&mut store, "dst")["requests.csv"].clone();
    assert!(requests.contains("SUP-1,SUP,Help,Open,2026-03-01T09:00:00Z,po-kim"), "{requests}");
    // A second run changes nothing.
    let before = export(&mut store, "dst");
    run(&mut store, &options("src", "dst"));
    assert_eq!(export(&mut store, "dst"), before);
    ferry_testkit::assert_integrity(&mut store);
}

/// A delta re-run (SPEC §2, re-run) decides only the customers no earlier
/// run copied, yet leaves every customer with the access one copy of the
/// final source would give: new customers, new requests by old and new
/// ones, an old customer added to another project's list and a new member
/// of an old organization all arrive.
fn a_delta_rerun_gives_the_access_of_one_copy(backend: Backend) {
    let additions = tempfile::tempdir().unwrap();
    let (first_db, second_db) = (TestDb::new(backend), TestDb::new(backend));
    let (mut twice, mut once) = (first_db.store(), second_db.store());
    for store in [&mut twice, &mut once] {
        ferry_snapshot::demo::load_demo(store, 150, 21, &mut ferry_snapshot::Quiet).unwrap();
    }
    // What arrives on the source after the first copy (the same for both).
    let source = export(&mut twice, "demo-src");
    let old_sup =
        source["customers.csv"].lines().find(|l| l.starts_with("SUP,")).unwrap().split(',').nth(1).unwrap().to_owned();
    let old_org = source["organizations.csv"].lines().nth(1).unwrap().split(',').next().unwrap().to_owned();
    // An Atlassian account copied before joins a group that holds the
    // Customer role on the source: a new membership of an old customer.
    let role_group = source["customer_roles.csv"].lines().nth(1).unwrap().split(',').nth(1).unwrap().to_owned();
    let in_group: Vec<&str> = source["groups.csv"]
        .lines()
        .filter(|l| l.split(',').next() == Some(role_group.as_str()))
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    let on_list = |key: &str| -> Vec<&str> {
        source["customers.csv"].lines().filter_map(|l| l.strip_prefix(&format!("{key},"))).collect()
    };
    let (on_sup, on_its) = (on_list("SUP"), on_list("ITS"));
    let joiner = source["accounts.csv"]
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("atlassian"))
        .filter_map(|l| l.split(',').next())
        .find(|id| !in_group.contains(id) && on_sup.contains(id) && !on_its.contains(id) && *id != old_sup)
        .unwrap()
        .to_owned();
    let next = |key: &str| {
        source["requests.csv"]
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}-")))
            .filter_map(|l| l.split(',').next()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1
    };
    let (sup, its) = (next("SUP"), next("ITS"));
    // A new Atlassian customer whose email a portal-only account of the
    // destination holds (case 6): the destination gains a duplicate.
    let destination = export(&mut twice, "demo-dst");
    let atlassian_emails: Vec<String> = [&source, &destination]
        .iter()
        .flat_map(|site| site["accounts.csv"].lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.split(',').nth(1) == Some("atlassian"))
        .filter_map(|l| l.split(',').nth(2).map(str::to_lowercase))
        .collect();
    let twin = destination["accounts.csv"]
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("customer"))
        .filter_map(|l| l.split(',').nth(2))
        .find(|email| email.is_ascii() && !email.is_empty() && !atlassian_emails.contains(&email.to_lowercase()))
        .unwrap()
        .to_owned();
    // A new portal-only customer whose id a destination account holds: its
    // new account takes the next free id.
    let source_ids: Vec<&str> = source["accounts.csv"].lines().filter_map(|l| l.split(',').next()).collect();
    let collider = destination["accounts.csv"]
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .find(|id| !source_ids.contains(id))
        .unwrap()
        .to_owned();
    let write = |name: &str, text: String| std::fs::write(additions.path().join(name), text).unwrap();
    write(
        "accounts.csv",
        "account_id,account_type,email,display_name,active,email_verified\n\
         po-new-1,customer,new.one@acme.test,New One,true,true\n\
         po-new-2,customer,new.two@acme.test,New Two,true,true\n\
         aa-new-3,atlassian,new.three@acme.test,New Three,true,true\n"
            .to_owned()
            + &format!(
                "aa-new-4,atlassian,{twin},Twin,true,true\n{collider},customer,collider@acme.test,Collider,true,true\n"
            ),
    );
    write(
        "customers.csv",
        format!("project_key,account_id\nSUP,po-new-1\nITS,{old_sup}\nSUP,aa-new-3\nSUP,aa-new-4\nSUP,{collider}\n"),
    );
    write("organizations.csv", format!("organization,account_id\n{old_org},po-new-2\n"));
    write("groups.csv", format!("group_name,account_id\n{role_group},{joiner}\n"));
    write(
        "requests.csv",
        format!(
            "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
             SUP-{sup},SUP,Later,Open,2026-05-01T09:00:00Z,po-new-1,{old_sup},\n\
             ITS-{its},ITS,Later too,Open,2026-05-02T09:00:00Z,{old_sup},po-new-2,\n"
        ),
    );
    write(
        "comments.csv",
        format!("request_key,author_id,created,body\nSUP-{sup},aa-new-3,2026-05-01T10:00:00Z,Me too\n"),
    );

    let joiner_email = source["accounts.csv"]
        .lines()
        .find(|l| l.starts_with(&format!("{joiner},")))
        .and_then(|l| l.split(',').nth(2))
        .unwrap()
        .to_owned();
    run(&mut twice, &options("demo-src", "demo-dst"));
    // Customer access: the destination's ITS customer list holds the account.
    let on_its_list = |store: &mut Store| -> i64 {
        store
            .read(|tx| {
                tx.query_opt(
                    "SELECT COUNT(*) FROM project_customers pc JOIN projects p ON p.id = pc.project_id
                     JOIN sites s ON s.id = p.site_id JOIN accounts a ON a.id = pc.account_id
                     WHERE s.slug = 'demo-dst' AND p.key = 'ITS' AND a.email_key = $1",
                    &[Val::T(&joiner_email.to_lowercase())],
                    |r| r.int(0),
                )
            })
            .unwrap()
            .unwrap()
    };
    assert_eq!(on_its_list(&mut twice), 0);
    import_site(&mut twice, "demo-src", additions.path(), &mut ferry_snapshot::Quiet).unwrap();
    // The re-run reads the destination's accounts by its customers' emails
    // and ids only; it decides as a reading of them all would.
    let keyed = twice.read(|tx| ferry_copy::plan_copy(tx, &options("demo-src", "demo-dst"))).unwrap();
    let whole =
        twice.read(|tx| ferry_copy::plan_copy_reading_whole_destination(tx, &options("demo-src", "demo-dst"))).unwrap();
    assert_eq!(keyed.customers, whole.customers);
    assert_eq!(keyed.destination_hidden_emails, whole.destination_hidden_emails);
    let moved = keyed.customers.iter().find(|c| c.ext_id == collider).unwrap();
    assert_eq!(moved.new_ext_id.as_deref(), Some(format!("{collider}-demo-src").as_str()));
    let (_, delta) = run(&mut twice, &options("demo-src", "demo-dst"));
    let mut decided: Vec<&str> = delta.customers.iter().map(|c| c.source_ext_id.as_str()).collect();
    decided.sort_unstable();
    let mut expected = vec!["aa-new-3", "aa-new-4", "po-new-1", "po-new-2", collider.as_str()];
    expected.sort_unstable();
    assert_eq!(decided, expected, "only the new customers are decided");

    let twin_row = delta.customers.iter().find(|c| c.source_ext_id == "aa-new-4").unwrap();
    assert_eq!(twin_row.outcome, ferry_core::plan::Outcome::BesidePortalOnly);
    // The destination's kept counts (its duplicates among them) are the
    // ones its rows give, though the re-run counted only its own chunk.
    ferry_testkit::assert_counts_kept(&mut twice);
    assert_eq!(delta.requests, 2);

    import_site(&mut once, "demo-src", additions.path(), &mut ferry_snapshot::Quiet).unwrap();
    run(&mut once, &options("demo-src", "demo-dst"));

    let emails: Vec<String> = export(&mut once, "demo-dst")["accounts.csv"]
        .lines()
        .skip(1)
        .filter_map(|l| csv::ReaderBuilder::new().has_headers(false).from_reader(l.as_bytes()).records().next()?.ok())
        .filter(|r| !r[2].is_empty())
        .map(|r| r[2].to_owned())
        .collect();
    assert!(emails.len() > 100);
    assert_eq!(on_its_list(&mut twice), 1, "the role group's new member reaches ITS's customer list");
    for email in &emails {
        for kind in [AccountType::PortalOnly, AccountType::Atlassian] {
            let has = |store: &mut Store| access_if_held(store, email, kind);
            assert_eq!(has(&mut twice), has(&mut once), "{email} ({kind:?})");
        }
    }
    let requests = |store: &mut Store| export(store, "demo-dst")["requests.csv"].clone();
    assert_eq!(requests(&mut twice), requests(&mut once));
    ferry_testkit::assert_integrity(&mut twice);
}

/// The requests `email`'s account of `kind` can view on demo-dst, or
/// `None` when the site has no such account.
fn access_if_held(store: &mut Store, email: &str, kind: AccountType) -> Option<Vec<String>> {
    let has = store
        .read(|tx| {
            let site = sites::site(tx, "demo-dst")?;
            let key = ferry_core::email::normalize(email).unwrap_or_default();
            accounts::find_by_email(tx, site.id, &key, Some(kind))
        })
        .unwrap()
        .is_some_and(|a| a.account_type == kind);
    has.then(|| access(store, "demo-dst", email, Some(kind)))
}

on_both_backends!(
    a_delta_rerun_gives_the_access_of_one_copy,
    hidden_emails_are_never_matched_and_make_outcomes_uncertain,
    the_schema_holds_exactly_the_typed_states,
    rollback_refuses_while_another_sources_run_builds_on_its_accounts,
    a_resumed_run_never_takes_ids_another_writer_took,
    a_run_that_cannot_go_on_ends_failed_and_blocks_nothing,
    refused_plans_leave_no_run_behind,
    export_then_import_gives_every_customer_the_same_access,
    both_types_on_the_source_show_both_after_copying,
    rollback_removes_what_the_run_created_and_revokes_what_it_granted,
    rollback_refuses_when_later_changes_depend_on_the_run,
    the_story_copies_as_the_seed_says,
    check_writes_the_files_run_writes,
    every_customer_ends_with_the_account_types_reported,
    a_run_right_after_a_run_changes_nothing,
    a_rerun_copies_only_what_is_new,
    blocking_conflicts_stop_the_run_before_anything_is_written,
    organizations_link_conflict_or_merge,
);
