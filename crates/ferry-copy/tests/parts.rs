//! A first copy of a large source is decided in parts, a part's customers
//! at a time (`plan_in_parts`, SPEC §9's ten million customers in flat
//! memory). Decided in parts of a few customers, every plan here must be the
//! plan decided whole: each customer's decision, report columns and new
//! id, the group, the projects and organizations; and a run must leave the
//! destination as a run planned whole does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use std::collections::BTreeMap;
use std::path::Path;

use ferry_copy::{CopyOptions, CopyPlan, PlannedCustomer, Quiet, Scope};
use ferry_snapshot::{export_site, import_site};
use ferry_store::{Store, sites};
use ferry_testkit::{Backend, TestDb, on_both_backends, story_dir};

/// The plan decided whole, and decided in parts of `part` customers (with
/// how many parts there were).
fn both_ways(store: &mut Store, options: &CopyOptions, part: usize) -> (CopyPlan, CopyPlan, usize) {
    let whole = store.read(|tx| ferry_copy::plan_copy(tx, options)).unwrap();
    let (mut parted, customers, parts) = store
        .write(|tx| {
            assert!(ferry_copy::planned_in_parts(tx, options, part)?, "the source has more than {part} accounts");
            let mut customers: Vec<PlannedCustomer> = Vec::new();
            let mut parts = 0;
            let plan =
                ferry_copy::plan_in_parts(tx, None, options, ferry_copy::PlanParts::of(part), &mut |_, some| {
                    assert!(!some.is_empty());
                    parts += 1;
                    customers.extend(some);
                    Ok(())
                })?;
            Ok::<_, ferry_copy::CopyError>((plan, customers, parts))
        })
        .unwrap();
    assert!(parted.customers.is_empty(), "the parts are handed over, not kept");
    parted.customers = customers;
    (whole, parted, parts)
}

fn assert_same_plan(whole: &CopyPlan, parted: &CopyPlan) {
    assert_eq!(parted.customers.len(), whole.customers.len());
    for (one, two) in whole.customers.iter().zip(&parted.customers) {
        assert_eq!(one, two);
    }
    assert_eq!(parted, whole);
}

fn demo_plans_alike_in_parts(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 250, 8, &mut ferry_snapshot::Quiet).unwrap();
    let options = CopyOptions::between("demo-src", "demo-dst");
    let (whole, parted, parts) = both_ways(&mut store, &options, 7);
    assert!(parts > 20, "{parts} parts");
    assert!(whole.group_name.is_some() && whole.customers.len() > 200);
    assert_same_plan(&whole, &parted);
    // Every account of the source, in parts of one customer (or one email).
    let mut all = options.clone();
    all.customers = Scope::All;
    let (whole, parted, _) = both_ways(&mut store, &all, 1);
    assert_same_plan(&whole, &parted);
}

/// New portal-only accounts whose ids the destination holds, beyond the
/// candidates a part reads, and one a new account of an earlier part took.
fn new_ids_in_parts_are_the_ids_given_whole(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    store
        .write(|tx| {
            sites::create_org(tx, "acme")?;
            sites::create_site(tx, "acme", "eu")?;
            sites::create_site(tx, "acme", "us")
        })
        .unwrap();
    let header = "account_id,account_type,email,display_name,active,email_verified\n";
    let eu = tempfile::tempdir().unwrap();
    let mut accounts = header.to_owned();
    for (id, email) in [("x", "a1@acme.test"), ("y", "b1@acme.test"), ("y-eu", "z9@acme.test")] {
        accounts.push_str(&format!("{id},customer,{email},{id},true,true\n"));
    }
    for n in 0..12 {
        accounts.push_str(&format!("filler-{n},customer,m{n}@acme.test,Filler,true,true\n"));
    }
    // One email with both account types on the source: "after copying"
    // shows both on each of its lines, so a part never splits an email.
    // And emails whose byte order is not their alphabetical order.
    accounts
        .push_str("po-both,customer,both@acme.test,Both,true,true\naa-both,atlassian,Both@Acme.test,Both,true,true\n");
    accounts.push_str("po-e,customer,éa@acme.test,É,true,true\npo-f,customer,fa@acme.test,F,true,true\n");
    std::fs::write(eu.path().join("accounts.csv"), accounts).unwrap();
    import_site(&mut store, "eu", eu.path(), &mut ferry_snapshot::Quiet).unwrap();
    let us = tempfile::tempdir().unwrap();
    let mut accounts = header.to_owned();
    let held = ["x", "x-eu", "x-eu-3", "x-eu-4", "x-eu-5", "x-eu-6", "x-eu-7", "x-eu-8", "x-eu-9", "y"];
    for (n, id) in held.iter().enumerate() {
        accounts.push_str(&format!("{id},customer,held{n}@other.test,Held,true,true\n"));
    }
    std::fs::write(us.path().join("accounts.csv"), accounts).unwrap();
    import_site(&mut store, "us", us.path(), &mut ferry_snapshot::Quiet).unwrap();
    let mut options = CopyOptions::between("eu", "us");
    options.customers = Scope::All;
    for part in [1, 2, 3] {
        let (whole, parted, parts) = both_ways(&mut store, &options, part);
        assert!(parts >= 18 / part, "{parts} parts of {part}");
        assert_same_plan(&whole, &parted);
    }
    let whole = store.read(|tx| ferry_copy::plan_copy(tx, &options)).unwrap();
    let given: BTreeMap<&str, &str> =
        whole.customers.iter().map(|c| (c.ext_id.as_str(), c.new_ext_id.as_deref().unwrap_or(""))).collect();
    assert_eq!(given["x"], "x-eu-10", "past every id the destination holds");
    assert_eq!(given["y"], "y-eu");
    assert_eq!(given["y-eu"], "y-eu-eu", "taken by a new account of an earlier part");
    let both: Vec<&str> = whole
        .customers
        .iter()
        .filter(|c| c.customer.email_key == "both@acme.test")
        .map(|c| c.decision.after.label())
        .collect();
    assert_eq!(both, ["Portal-only and Atlassian account"; 2]);
}

fn export(store: &mut Store, site: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    export_site(store, site, dir.path()).unwrap();
    ferry_testkit::read_folder(dir.path())
}

fn report(data: &ferry_copy::ReportData) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    ferry_copy::write_report(data, dir.path()).unwrap();
    ["Customers.csv", "RequiresAttention.csv"]
        .into_iter()
        .map(|name| (name.to_owned(), std::fs::read_to_string(Path::new(dir.path()).join(name)).unwrap()))
        .collect()
}

/// `copy run` planning in parts of a few customers (this test file is its
/// own process, so the setting reaches no test elsewhere; here the runs
/// take turns): the destination and the report are those of a run planned
/// whole, on a twin database.
fn a_run_planned_in_parts_copies_as_one_planned_whole(backend: Backend) {
    let _turn = PART.lock().unwrap_or_else(|e| e.into_inner());
    let copy = |part: usize| {
        let db = TestDb::new(backend);
        let mut store = db.store();
        ferry_snapshot::demo::load_demo(&mut store, 120, 3, &mut ferry_snapshot::Quiet).unwrap();
        import_site(&mut store, "demo-src", &story_dir().join("eu"), &mut ferry_snapshot::Quiet).unwrap();
        let options = CopyOptions::between("demo-src", "demo-dst");
        let parted = store.read(|tx| ferry_copy::planned_in_parts(tx, &options, 5)).unwrap();
        assert!(parted);
        ferry_copy::set_plan_part(part);
        let (_, data) = ferry_copy::run(&mut store, &options, &mut Quiet, |_| {}).unwrap();
        ferry_testkit::assert_counts_kept(&mut store);
        (export(&mut store, "demo-dst"), report(&data), data.summary())
    };
    let whole = copy(0);
    let parted = copy(5);
    ferry_copy::set_plan_part(0);
    assert_eq!(parted.0, whole.0, "the destination");
    assert_eq!(parted.1, whole.1, "the report's lines");
    assert_eq!(parted.2["counts"], whole.2["counts"]);
}

/// `copy check` in parts writes every file of the report a check decided
/// whole writes, its lines never held (the data it returns holds none).
fn a_check_in_parts_writes_the_report_of_one_decided_whole(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 250, 8, &mut ferry_snapshot::Quiet).unwrap();
    let options = CopyOptions::between("demo-src", "demo-dst");
    let whole = tempfile::tempdir().unwrap();
    let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options)).unwrap();
    ferry_copy::write_plan_report(&plan, whole.path()).unwrap();
    let parted = tempfile::tempdir().unwrap();
    let data = {
        let _turn = PART.lock().unwrap_or_else(|e| e.into_inner());
        ferry_copy::set_plan_part(7);
        let checked = ferry_copy::check_reporting(&mut store, &options, parted.path());
        ferry_copy::set_plan_part(0);
        checked.unwrap().1
    };
    assert!(data.customers.is_empty());
    assert_eq!(data.totals.listed, plan.customers.len() as u64);
    let files = |dir: &Path| -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
            })
            .collect()
    };
    let (one, two) = (files(whole.path()), files(parted.path()));
    assert_eq!(one.keys().collect::<Vec<_>>(), ["Customers.csv", "RequiresAttention.csv", "Summary.json"]);
    assert_eq!(one, two);
    assert!(one["RequiresAttention.csv"].contains("Review group customers-from-demo-src"));
    // And whole (a site below the part size), the same files again.
    let again = tempfile::tempdir().unwrap();
    let _turn = PART.lock().unwrap_or_else(|e| e.into_inner());
    ferry_copy::check_reporting(&mut store, &options, again.path()).unwrap();
    assert_eq!(files(again.path()), one);
}

static PART: std::sync::Mutex<()> = std::sync::Mutex::new(());

on_both_backends!(
    demo_plans_alike_in_parts,
    new_ids_in_parts_are_the_ids_given_whole,
    a_run_planned_in_parts_copies_as_one_planned_whole,
    a_check_in_parts_writes_the_report_of_one_decided_whole,
);
