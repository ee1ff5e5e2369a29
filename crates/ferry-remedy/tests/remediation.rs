//! Remediation on both backends: the seed's story after the copy (approve,
//! decline, upgrade), what an upgrade moves and what it never touches, and
//! rollbacks that refuse after remediation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use std::collections::BTreeMap;
use std::path::Path;

use ferry_copy::{CopyError, CopyOptions};
use ferry_core::model::{AccountType, GroupState};
use ferry_remedy::{GroupDecision, Quiet, RemedyError, Selection, UpgradeStatus, decide_group, list_groups, upgrade};
use ferry_snapshot::{export_site, import_site};
use ferry_store::{Store, Val, audit, sites};
use ferry_testkit::{Backend, TestDb, access, on_both_backends, story_dir};

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
    let options = CopyOptions::between("eu", "us");
    ferry_copy::run(store, &options, &mut ferry_copy::Quiet, |_| {}).unwrap();
}

fn export(store: &mut Store, site: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    export_site(store, site, dir.path()).unwrap();
    ferry_testkit::read_folder(dir.path())
}

fn audit_actions(store: &mut Store) -> Vec<(String, String)> {
    store.read(|tx| audit::list(tx, None, None)).unwrap().into_iter().map(|e| (e.action, e.target)).collect()
}

const STORY: [&str; 6] =
    ["alice@acme.test", "bruno@acme.test", "chen@acme.test", "dana@acme.test", "eli@acme.test", "fay@acme.test"];

fn story_access(store: &mut Store) -> Vec<Vec<String>> {
    STORY.iter().map(|e| access(store, "us", e, None)).collect()
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn approving_the_imported_group_lets_its_members_see_their_requests(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    store.set_actor("admin@acme.test");
    story(&mut store);
    assert!(access(&mut store, "us", "chen@acme.test", None).is_empty(), "awaiting review grants nothing");

    let pending = list_groups(&mut store, "us", true).unwrap();
    assert_eq!(pending.len(), 1);
    let group = &pending[0];
    assert_eq!(group.name, "customers-from-eu");
    assert_eq!(group.state, GroupState::AwaitingReview);
    assert_eq!(group.run, Some(1));
    assert_eq!(group.members, keys(&["chen@acme.test"]));
    assert_eq!(group.projects, keys(&["SUP"]));
    assert_eq!(group.requests_gained, 1);

    let before = story_access(&mut store);
    // Names are case-insensitive.
    let (review, changed) = decide_group(&mut store, "us", "Customers-From-EU", GroupDecision::Approve).unwrap();
    assert!(changed);
    assert_eq!(review.state, GroupState::Active);
    assert_eq!(access(&mut store, "us", "chen@acme.test", None), keys(&["SUP-3"]));
    let after = story_access(&mut store);
    for (i, email) in STORY.iter().enumerate() {
        if *email != "chen@acme.test" {
            assert_eq!(before[i], after[i], "approval changed what {email} sees");
        }
    }
    assert!(list_groups(&mut store, "us", true).unwrap().is_empty());

    // Idempotent: a second approval changes nothing and logs nothing.
    let (_, changed) = decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Approve).unwrap();
    assert!(!changed);
    let approvals: Vec<_> = audit_actions(&mut store).into_iter().filter(|(a, _)| a == "group.approve").collect();
    assert_eq!(approvals, [("group.approve".to_owned(), "customers-from-eu".to_owned())]);
    let entry = store.read(|tx| audit::list(tx, None, None)).unwrap().into_iter().last().unwrap();
    assert_eq!(entry.actor, "admin@acme.test");
    assert!(entry.before.unwrap().contains("awaiting_review"));
    assert!(entry.after.unwrap().contains("\"active\""));

    // After the approval, the run can no longer be rolled back.
    match ferry_copy::rollback(&mut store, 1) {
        Err(CopyError::RollbackRefused { blockers, .. }) => {
            assert!(blockers.iter().any(|b| b.contains("customers-from-eu") && b.contains("approved")), "{blockers:?}")
        }
        other => panic!("rollback after approval: {other:?}"),
    }
}

fn a_declined_group_leaves_its_members_without_access(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let before = story_access(&mut store);
    let (review, changed) = decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Decline).unwrap();
    assert!(changed);
    assert_eq!(review.state, GroupState::Declined);
    assert!(access(&mut store, "us", "chen@acme.test", None).is_empty());
    assert_eq!(story_access(&mut store), before);
    let (_, changed) = decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Decline).unwrap();
    assert!(!changed);
    assert!(list_groups(&mut store, "us", true).unwrap().is_empty());
    assert_eq!(list_groups(&mut store, "us", false).unwrap()[0].state, GroupState::Declined);
    match ferry_copy::rollback(&mut store, 1) {
        Err(CopyError::RollbackRefused { blockers, .. }) => {
            assert!(blockers.iter().any(|b| b.contains("declined")), "{blockers:?}")
        }
        other => panic!("rollback after decline: {other:?}"),
    }
    // A decision can be changed, both ways, and each change is logged.
    assert!(decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Approve).unwrap().1);
    assert_eq!(access(&mut store, "us", "chen@acme.test", None), keys(&["SUP-3"]));
    assert!(decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Decline).unwrap().1);
    assert!(access(&mut store, "us", "chen@acme.test", None).is_empty());
    let decisions = audit_actions(&mut store).into_iter().filter(|(a, _)| a.starts_with("group.")).count();
    assert_eq!(decisions, 3);
}

/// "Requests gained" is what approval changes under the access rule: the
/// requests the members can view after approval and could not before.
fn requests_gained_is_what_approval_opens(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 400, 3, &mut ferry_snapshot::Quiet).unwrap();
    let options = CopyOptions::between("demo-src", "demo-dst");
    ferry_copy::run(&mut store, &options, &mut ferry_copy::Quiet, |_| {}).unwrap();
    let group = list_groups(&mut store, "demo-dst", true).unwrap().remove(0);
    assert!(group.members.len() > 10 && group.requests_gained > 0, "{group:?}");
    let visible = |store: &mut Store| {
        let mut all = std::collections::BTreeSet::new();
        for member in &group.members {
            all.extend(access(store, "demo-dst", member, Some(AccountType::Atlassian)));
        }
        all
    };
    let before = visible(&mut store);
    decide_group(&mut store, "demo-dst", &group.name, GroupDecision::Approve).unwrap();
    let after = visible(&mut store);
    assert!(before.is_subset(&after));
    assert_eq!(after.difference(&before).count() as u64, group.requests_gained);
    // Once active, approving again would change nothing, and says so.
    let approved = list_groups(&mut store, "demo-dst", false).unwrap().into_iter().find(|g| g.name == group.name);
    assert_eq!(approved.map(|g| g.requests_gained), Some(0));
    // Declined, approval would open the same requests again.
    decide_group(&mut store, "demo-dst", &group.name, GroupDecision::Decline).unwrap();
    let declined = list_groups(&mut store, "demo-dst", false).unwrap().into_iter().find(|g| g.name == group.name);
    assert_eq!(declined.map(|g| g.requests_gained), Some(group.requests_gained));
}

fn only_imported_groups_are_reviewed(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    store
        .write(|tx| {
            let us = sites::site(tx, "us")?;
            tx.execute(
                "INSERT INTO groups (id, site_id, name, name_key, state) VALUES (900, $1, 'staff', 'staff', 'active')",
                &[Val::I(us.id)],
            )
        })
        .unwrap();
    for decision in [GroupDecision::Approve, GroupDecision::Decline] {
        match decide_group(&mut store, "us", "staff", decision) {
            Err(RemedyError::Store(ferry_store::StoreError::Conflict(message))) => {
                assert!(message.contains("not an imported group"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match decide_group(&mut store, "us", "nobody", decision) {
            Err(RemedyError::Store(ferry_store::StoreError::NotFound(message))) => {
                assert!(message.contains("no group named"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
    let all = list_groups(&mut store, "us", false).unwrap();
    assert_eq!(
        all.iter().map(|g| (g.name.as_str(), g.run)).collect::<Vec<_>>(),
        [("customers-from-eu", Some(1)), ("staff", None)]
    );
}

fn upgrading_the_story_duplicate_shows_requests_under_either_account(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    assert_eq!(access(&mut store, "us", "fay@acme.test", None), keys(&["SUP-6"]));
    let before = story_access(&mut store);

    let dry = upgrade(&mut store, "us", &Selection::AllDuplicates, true, &mut Quiet).unwrap();
    assert_eq!(dry.lines.len(), 1);
    assert_eq!(dry.lines[0].email, "fay@acme.test");
    assert_eq!(dry.lines[0].status, UpgradeStatus::ToExisting { atlassian_ext_id: "aa-fay".into() });
    let refs = dry.lines[0].references.unwrap();
    assert_eq!((refs.requests_reported, refs.customer_lists), (1, 1));
    assert_eq!(access(&mut store, "us", "fay@acme.test", Some(AccountType::PortalOnly)), keys(&["HR-1"]), "dry run");

    let done = upgrade(&mut store, "us", &Selection::Emails(vec!["FAY@acme.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    assert_eq!(done.upgraded(), 1);
    assert_eq!(access(&mut store, "us", "fay@acme.test", None), keys(&["HR-1", "SUP-6"]));
    assert!(access(&mut store, "us", "fay@acme.test", Some(AccountType::PortalOnly)).is_empty());
    let after = story_access(&mut store);
    for (i, email) in STORY.iter().enumerate() {
        if *email != "fay@acme.test" {
            assert_eq!(before[i], after[i], "the upgrade changed what {email} sees");
        }
    }
    match ferry_copy::rollback(&mut store, 1) {
        Err(CopyError::RollbackRefused { blockers, .. }) => {
            assert!(blockers.iter().any(|b| b.contains("fay@acme.test") && b.contains("upgraded")), "{blockers:?}")
        }
        other => panic!("rollback after upgrade: {other:?}"),
    }
    assert!(audit_actions(&mut store).contains(&("customer.upgrade".to_owned(), "fay@acme.test".to_owned())));
}

fn write_site(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
}

/// One site with every kind of reference an upgrade moves: kim (portal-only
/// and a verified Atlassian account, both on one request and one list),
/// lee (Atlassian account unverified), max (no Atlassian account), ned (a
/// bystander).
fn references_site(store: &mut Store) {
    let dir = tempfile::tempdir().unwrap();
    write_site(
        dir.path(),
        &[
            (
                "accounts.csv",
                "account_id,account_type,email,display_name,active,email_verified
po-kim,customer,kim@x.test,Kim,true,true
aa-kim,atlassian,kim@x.test,Kim,true,true
po-lee,customer,lee@x.test,Lee,true,true
aa-lee,atlassian,lee@x.test,Lee,true,false
po-max,customer,max@x.test,Max,true,true
po-ned,customer,ned@x.test,Ned,true,true
po-oli,customer,oli@x.test,Oli,false,true
aa-oli,atlassian,oli@x.test,Oli,true,true
",
            ),
            ("projects.csv", "project_key,name\nPX,Project X\n"),
            ("customers.csv", "project_key,account_id\nPX,po-kim\nPX,aa-kim\nPX,po-lee\nPX,po-max\nPX,po-ned\n"),
            ("organizations.csv", "organization,account_id\nOrg1,po-kim\nOrg1,aa-kim\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization
PX-1,PX,Kim portal,Open,2026-01-01T00:00:00Z,po-kim,po-ned,
PX-2,PX,Kim atlassian,Open,2026-01-02T00:00:00Z,aa-kim,po-kim,
PX-3,PX,Ned only,Open,2026-01-03T00:00:00Z,po-ned,,
PX-4,PX,Max,Open,2026-01-04T00:00:00Z,po-max,,
PX-5,PX,Lee,Open,2026-01-05T00:00:00Z,po-lee,,
",
            ),
            ("comments.csv", "request_key,author_id,created,body\nPX-1,po-kim,2026-01-01T01:00:00Z,hello\n"),
        ],
    );
    store
        .write(|tx| {
            sites::create_org(tx, "x")?;
            sites::create_site(tx, "x", "x")
        })
        .unwrap();
    import_site(store, "x", dir.path(), &mut ferry_snapshot::Quiet).unwrap();
}

fn an_upgrade_moves_every_reference_and_collapses_duplicates(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    references_site(&mut store);
    let ned_before = access(&mut store, "x", "ned@x.test", None);
    assert_eq!(ned_before, keys(&["PX-1", "PX-3"]));
    assert_eq!(access(&mut store, "x", "kim@x.test", None), keys(&["PX-2"]));
    let untouched = export(&mut store, "x");

    // The dry run lists exactly what would move and changes nothing.
    let dry = upgrade(&mut store, "x", &Selection::Emails(vec!["kim@x.test".into()]), true, &mut Quiet).unwrap();
    let refs = dry.lines[0].references.unwrap();
    assert_eq!(
        (refs.requests_reported, refs.participations, refs.comments, refs.customer_lists, refs.organizations),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(export(&mut store, "x"), untouched);

    let done = upgrade(&mut store, "x", &Selection::Emails(vec!["kim@x.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    assert_eq!(done.upgraded(), 1);
    assert_eq!(access(&mut store, "x", "kim@x.test", None), keys(&["PX-1", "PX-2"]));
    assert!(access(&mut store, "x", "kim@x.test", Some(AccountType::PortalOnly)).is_empty());
    assert_eq!(access(&mut store, "x", "ned@x.test", None), ned_before, "a bystander's view never changes");
    let files = export(&mut store, "x");
    let requests = &files["requests.csv"];
    assert!(requests.contains("PX-1,PX,Kim portal,Open,2026-01-01T00:00:00Z,aa-kim,po-ned,"), "{requests}");
    // Both accounts were on PX-2: one entry remains.
    assert!(requests.contains("PX-2,PX,Kim atlassian,Open,2026-01-02T00:00:00Z,aa-kim,aa-kim,"), "{requests}");
    assert!(files["comments.csv"].contains("PX-1,aa-kim,"), "{}", files["comments.csv"]);
    let customers = &files["customers.csv"];
    assert_eq!(customers.matches("PX,aa-kim").count(), 1, "{customers}");
    assert!(!customers.contains("po-kim"), "{customers}");
    let organizations = &files["organizations.csv"];
    assert_eq!(organizations.matches("Org1,aa-kim").count(), 1, "{organizations}");
    assert!(!organizations.contains("po-kim"), "{organizations}");
    let (active, merged_into) = store
        .read(|tx| {
            tx.query_opt(
                "SELECT a.active, m.ext_id FROM accounts a JOIN accounts m ON m.id = a.merged_into WHERE a.ext_id = 'po-kim'",
                &[],
                |r| Ok((r.bool(0)?, r.text(1)?.to_owned())),
            )
        })
        .unwrap()
        .unwrap();
    assert!(!active);
    assert_eq!(merged_into, "aa-kim");

    // Idempotent.
    let again = upgrade(&mut store, "x", &Selection::Emails(vec!["kim@x.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    assert_eq!(again.lines[0].status, UpgradeStatus::AlreadyUpgraded { atlassian_ext_id: "aa-kim".into() });
    assert_eq!(export(&mut store, "x"), files);
}

fn an_unverified_atlassian_account_blocks_and_a_missing_one_is_created(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    references_site(&mut store);
    let report =
        upgrade(&mut store, "x", &Selection::Emails(vec!["lee@x.test".into(), "max@x.test".into()]), false, &mut Quiet)
            .unwrap();
    match &report.lines[0].status {
        UpgradeStatus::Blocked { reason } => {
            assert!(reason.contains("aa-lee") && reason.contains("unverified"), "{reason}")
        }
        other => panic!("lee: {other:?}"),
    }
    assert_eq!(access(&mut store, "x", "lee@x.test", Some(AccountType::PortalOnly)), keys(&["PX-5"]), "lee untouched");
    let UpgradeStatus::ToNew { atlassian_ext_id } = &report.lines[1].status else {
        panic!("max: {:?}", report.lines[1].status)
    };
    let (verified, pending) = store
        .read(|tx| {
            tx.query_opt(
                "SELECT email_verified, invitation_pending FROM accounts WHERE site_id IS NULL AND ext_id = $1",
                &[Val::T(atlassian_ext_id)],
                |r| Ok((r.bool(0)?, r.bool(1)?)),
            )
        })
        .unwrap()
        .unwrap();
    assert!(!verified && pending, "created unverified, invitation pending");
    assert_eq!(access(&mut store, "x", "max@x.test", None), keys(&["PX-4"]));

    // --all-duplicates takes only emails with an Atlassian site user: kim
    // and lee (blocked), not ned.
    // An inactive portal-only account is not handed to an active one.
    let oli = upgrade(&mut store, "x", &Selection::Emails(vec!["oli@x.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    match &oli.lines[0].status {
        UpgradeStatus::Blocked { reason } => assert!(reason.contains("inactive"), "{reason}"),
        other => panic!("oli: {other:?}"),
    }

    let all = upgrade(&mut store, "x", &Selection::AllDuplicates, true, &mut Quiet).unwrap();
    let emails: Vec<_> = all.lines.iter().map(|l| l.email.as_str()).collect();
    assert_eq!(emails, ["kim@x.test", "lee@x.test", "oli@x.test"]);

    // An unknown email is bad input and nothing is written.
    let before = export(&mut store, "x");
    match upgrade(
        &mut store,
        "x",
        &Selection::Emails(vec!["kim@x.test".into(), "zed@x.test".into()]),
        false,
        &mut Quiet,
    ) {
        Err(RemedyError::Store(ferry_store::StoreError::NotFound(message))) => {
            assert!(message.contains("zed@x.test"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(export(&mut store, "x"), before);
}

fn the_audit_log_records_who_did_what(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    store.set_actor("ops@acme.test");
    story(&mut store);
    decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Decline).unwrap();
    let entries = store.read(|tx| audit::list(tx, None, None)).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["site.import", "site.import", "copy.run", "group.decline"]);
    assert!(entries.iter().all(|e| e.actor == "ops@acme.test"));
    let us = store.read(|tx| Ok::<_, ferry_store::StoreError>(sites::site(tx, "us")?.id)).unwrap();
    let only_us = store.read(|tx| audit::list(tx, Some(us), None)).unwrap();
    assert_eq!(
        only_us.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["site.import", "copy.run", "group.decline"]
    );
    let later = store.read(|tx| audit::list(tx, None, Some("2999-01-01T00:00:00.000Z"))).unwrap();
    assert!(later.is_empty());
    let since_first = store.read(|tx| audit::list(tx, None, Some(&entries[0].at))).unwrap();
    assert_eq!(since_first.len(), entries.len());
}

fn import_files(store: &mut Store, site: &str, files: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path(), files);
    import_site(store, site, dir.path(), &mut ferry_snapshot::Quiet).unwrap();
}

fn copy(store: &mut Store, from: &str, to: &str) -> i64 {
    let options = CopyOptions::between(from, to);
    ferry_copy::run(store, &options, &mut ferry_copy::Quiet, |_| {}).unwrap().0
}

fn copies_after_an_upgrade_follow_the_upgraded_account(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    // bruno's copied portal-only account has no Atlassian twin: the upgrade
    // creates one (unverified) and merges the portal-only account into it.
    let report =
        upgrade(&mut store, "us", &Selection::Emails(vec!["bruno@acme.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    assert!(matches!(report.lines[0].status, UpgradeStatus::ToNew { .. }), "{:?}", report.lines[0].status);
    assert_eq!(access(&mut store, "us", "bruno@acme.test", None), keys(&["SUP-2"]));

    // The source grows: a new request by bruno, and a new project whose
    // customer list holds bruno. The re-run gives both to the upgraded
    // account, customer-list entry included.
    import_files(
        &mut store,
        "eu",
        &[
            ("accounts.csv", "account_id,account_type,email,display_name,active,email_verified\n"),
            ("projects.csv", "project_key,name\nOPS,Operations\n"),
            ("customers.csv", "project_key,account_id\nOPS,po-bruno\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization
SUP-7,SUP,Another question,Open,2026-03-01T00:00:00Z,po-bruno,,
OPS-1,OPS,Ops question,Open,2026-03-02T00:00:00Z,po-bruno,,
",
            ),
        ],
    );
    copy(&mut store, "eu", "us");
    assert_eq!(access(&mut store, "us", "bruno@acme.test", None), keys(&["OPS-1", "SUP-2", "SUP-7"]));

    // Another source brings a new portal-only bruno (the upgraded account is
    // unverified, so it is not linked) and fay's Atlassian account, whose
    // portal-only twin on us is upgraded before this run.
    upgrade(&mut store, "us", &Selection::Emails(vec!["fay@acme.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    store
        .write(|tx| {
            sites::create_site(tx, "acme", "apac")?;
            Ok::<_, ferry_store::StoreError>(())
        })
        .unwrap();
    import_files(
        &mut store,
        "apac",
        &[
            (
                "accounts.csv",
                "account_id,account_type,email,display_name,active,email_verified
po-bruno-apac,customer,bruno@acme.test,Bruno,true,true
aa-fay,atlassian,fay@acme.test,Fay,true,true
",
            ),
            ("projects.csv", "project_key,name\nAPX,Asia\n"),
            ("customers.csv", "project_key,account_id\nAPX,po-bruno-apac\nAPX,aa-fay\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization
APX-1,APX,Fay asks,Open,2026-04-01T00:00:00Z,aa-fay,,
APX-2,APX,Bruno asks,Open,2026-04-02T00:00:00Z,po-bruno-apac,,
",
            ),
        ],
    );
    let run = copy(&mut store, "apac", "us");
    assert_eq!(access(&mut store, "us", "bruno@acme.test", Some(AccountType::PortalOnly)), keys(&["APX-2"]));
    assert_eq!(access(&mut store, "us", "fay@acme.test", None), keys(&["APX-1", "HR-1", "SUP-6"]));
    // That run came after the upgrades: it can be rolled back; the first
    // run, upgraded after, cannot.
    ferry_copy::rollback(&mut store, run).unwrap();
    assert_eq!(access(&mut store, "us", "fay@acme.test", None), keys(&["HR-1", "SUP-6"]));
    assert!(matches!(ferry_copy::rollback(&mut store, 1), Err(CopyError::RollbackRefused { .. })));
}

fn an_upgrade_makes_an_atlassian_account_of_another_site_a_user_of_this_one(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    references_site(&mut store);
    store.write(|tx| sites::create_site(tx, "x", "y").map(|_| ())).unwrap();
    import_files(
        &mut store,
        "y",
        &[(
            "accounts.csv",
            "account_id,account_type,email,display_name,active,email_verified\naa-pat,atlassian,pat@x.test,Pat,true,true\n",
        )],
    );
    import_files(
        &mut store,
        "x",
        &[
            (
                "accounts.csv",
                "account_id,account_type,email,display_name,active,email_verified\npo-pat,customer,pat@x.test,Pat,true,true\n",
            ),
            ("customers.csv", "project_key,account_id\nPX,po-pat\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization
PX-6,PX,Pat,Open,2026-01-06T00:00:00Z,po-pat,,
",
            ),
        ],
    );
    // aa-pat is not a user of x, so pat is no duplicate there yet.
    let all = upgrade(&mut store, "x", &Selection::AllDuplicates, true, &mut Quiet).unwrap();
    assert!(all.lines.iter().all(|l| l.email != "pat@x.test"));
    let report = upgrade(&mut store, "x", &Selection::Emails(vec!["pat@x.test".into()]), false, &mut Quiet).unwrap();
    ferry_testkit::assert_counts_kept(&mut store);
    assert_eq!(report.lines[0].status, UpgradeStatus::ToExisting { atlassian_ext_id: "aa-pat".into() });
    assert_eq!(access(&mut store, "x", "pat@x.test", Some(AccountType::Atlassian)), keys(&["PX-6"]));
    assert_eq!(access(&mut store, "y", "pat@x.test", Some(AccountType::Atlassian)), Vec::<String>::new());
}

fn no_upgrade_while_a_run_into_the_site_is_unfinished(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let set_state = |store: &mut Store, state: &str| {
        store.write(|tx| tx.execute("UPDATE copy_runs SET state = $1 WHERE id = 1", &[Val::T(state)])).unwrap();
    };
    set_state(&mut store, "applying");
    match upgrade(&mut store, "us", &Selection::AllDuplicates, false, &mut Quiet) {
        Err(RemedyError::Store(ferry_store::StoreError::Conflict(message))) => {
            assert!(message.contains("copy run 1") && message.contains("unfinished"))
        }
        other => panic!("{other:?}"),
    }
    set_state(&mut store, "done");
    assert_eq!(upgrade(&mut store, "us", &Selection::AllDuplicates, false, &mut Quiet).unwrap().upgraded(), 1);
}

/// A site that received customers is copied on: an imported group awaiting
/// review or declined grants nothing there; approved, it does, on a first
/// copy and on a re-run of an earlier one; an upgrade's moved list entries
/// reach a re-run too.
fn group_reviews_and_upgrades_on_a_source_reach_its_copies_and_reruns(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    story(&mut store);
    let copy = |store: &mut Store, to: &str| {
        store.write(|tx| sites::create_site(tx, "acme", to)).unwrap();
        ferry_copy::run(store, &CopyOptions::between("us", to), &mut ferry_copy::Quiet, |_| {}).unwrap();
    };
    // chen reached us through the imported group, awaiting review: no
    // access there, so none on a site us is copied to.
    assert!(access(&mut store, "us", "chen@acme.test", None).is_empty());
    copy(&mut store, "asia");
    assert!(access(&mut store, "asia", "chen@acme.test", None).is_empty());
    // Declined: the same.
    decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Decline).unwrap();
    copy(&mut store, "africa");
    assert!(access(&mut store, "africa", "chen@acme.test", None).is_empty());
    // Approved: the group's Customer role becomes a customer-list entry on
    // the next site, and chen sees there what chen sees on us.
    decide_group(&mut store, "us", "customers-from-eu", GroupDecision::Approve).unwrap();
    let seen = access(&mut store, "us", "chen@acme.test", None);
    assert!(!seen.is_empty());
    copy(&mut store, "oceania");
    assert_eq!(access(&mut store, "oceania", "chen@acme.test", None), seen);

    // A re-run onto asia, copied while the group awaited review, brings
    // what the approval opened: approving stamps the group's roles anew, so
    // the re-run, which reads only memberships that arrived since, sees
    // whom they reach now.
    let rerun = |store: &mut Store, to: &str| {
        ferry_copy::run(store, &CopyOptions::between("us", to), &mut ferry_copy::Quiet, |_| {}).unwrap();
    };
    rerun(&mut store, "asia");
    assert_eq!(access(&mut store, "asia", "chen@acme.test", None), seen);
    // An upgrade on us moves customer-list entries from portal-only
    // accounts to Atlassian ones (stamped anew as well): a re-run onto asia
    // then gives every customer the access a first copy of us gives.
    let report = upgrade(&mut store, "us", &Selection::AllDuplicates, false, &mut Quiet).unwrap();
    assert!(!report.lines.is_empty(), "the story has a duplicate to upgrade");
    rerun(&mut store, "asia");
    copy(&mut store, "europe");
    // What `email`'s account of `kind` can view on `site`, `None` when the
    // site has no such account.
    let held = |store: &mut Store, site: &str, email: &str, kind: AccountType| {
        let found = store
            .read(|tx| {
                let site = sites::site(tx, site)?;
                ferry_store::accounts::find_by_email(tx, site.id, email, Some(kind))
            })
            .unwrap()
            .is_some_and(|a| a.account_type == kind);
        found.then(|| access(store, site, email, Some(kind)))
    };
    // What each person (an email, whichever of its accounts they use)
    // sees: a re-run adds and never deletes, so the portal-only account
    // asia got before the upgrade stays, with the requests copied to it (a
    // request is copied once; upgrading asia's duplicates is asia's own
    // step); no one sees less than one copy of us gives.
    let person = |store: &mut Store, site: &str, email: &str| {
        let mut seen: Vec<String> = [AccountType::PortalOnly, AccountType::Atlassian]
            .into_iter()
            .filter_map(|kind| held(store, site, email, kind))
            .flatten()
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    };
    for email in STORY {
        assert_eq!(
            person(&mut store, "asia", email),
            person(&mut store, "europe", email),
            "{email}: a re-run after the upgrade gives what one copy gives"
        );
    }
    // Every customer-list entry one copy gives (the Atlassian accounts'
    // moved entries among them), the re-run gave too.
    let lists = |store: &mut Store, site: &str| -> std::collections::BTreeSet<(String, String, String)> {
        store
            .read(|tx| {
                tx.query_all(
                    "SELECT p.key, a.email_key, a.kind FROM project_customers pc
                     JOIN projects p ON p.id = pc.project_id JOIN sites s ON s.id = p.site_id
                     JOIN accounts a ON a.id = pc.account_id WHERE s.slug = $1",
                    &[Val::T(site)],
                    |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned(), r.text(2)?.to_owned())),
                )
            })
            .unwrap()
            .into_iter()
            .collect()
    };
    let (rerun_lists, copy_lists) = (lists(&mut store, "asia"), lists(&mut store, "europe"));
    assert!(copy_lists.iter().any(|(_, email, kind)| email == "fay@acme.test" && kind == "atlassian"));
    let missing: Vec<_> = copy_lists.difference(&rerun_lists).collect();
    assert!(missing.is_empty(), "list entries one copy gives and the re-run did not: {missing:?}");
    ferry_testkit::assert_integrity(&mut store);
}

/// The help center asks the database only for requests an account is
/// related to, then applies the access rule: that filter must never hide a
/// request the rule (`ferry_core::access::can_view_request`), asked about
/// every request of the site, would show. Checked after a copy, with its
/// imported group awaiting review, then approved.
fn the_access_prefilter_never_hides_what_the_rule_shows(backend: Backend) {
    use ferry_core::access::{AccessFacts, can_view_request};
    use std::collections::{HashMap, HashSet};
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 150, 3, &mut ferry_snapshot::Quiet).unwrap();
    let (_, data) =
        ferry_copy::run(&mut store, &CopyOptions::between("demo-src", "demo-dst"), &mut ferry_copy::Quiet, |_| {})
            .unwrap();
    let check = |store: &mut Store| {
        store
            .read(|tx| {
                let site = sites::site(tx, "demo-dst")?.id;
                let pairs = |tx: &mut ferry_store::Tx<'_>, sql: &str| -> Result<HashSet<(i64, i64)>, ferry_store::StoreError> {
                    Ok(tx.query_all(sql, &[ferry_store::Val::I(site)], |r| Ok((r.int(0)?, r.int(1)?)))?.into_iter().collect())
                };
                let requests = tx.query_all(
                    "SELECT r.id, p.key || '-' || r.number, r.project_id, r.reporter_id, r.organization_id
                     FROM requests r JOIN projects p ON p.id = r.project_id WHERE r.site_id = $1",
                    &[ferry_store::Val::I(site)],
                    |r| Ok((r.int(0)?, r.text(1)?.to_owned(), r.int(2)?, r.int(3)?, r.opt_int(4)?)),
                )?;
                let participants = pairs(tx, "SELECT rp.request_id, rp.account_id FROM request_participants rp JOIN requests r ON r.id = rp.request_id WHERE r.site_id = $1")?;
                let members = pairs(tx, "SELECT m.organization_id, m.account_id FROM organization_members m JOIN organizations o ON o.id = m.organization_id WHERE o.site_id = $1")?;
                let listed = pairs(tx, "SELECT pc.project_id, pc.account_id FROM project_customers pc JOIN projects p ON p.id = pc.project_id WHERE p.site_id = $1")?;
                let mut roles: HashMap<(i64, i64), Vec<GroupState>> = HashMap::new();
                tx.query_each(
                    "SELECT cr.project_id, gm.account_id, g.state FROM customer_roles cr JOIN groups g ON g.id = cr.group_id
                     JOIN group_members gm ON gm.group_id = g.id WHERE g.site_id = $1",
                    &[ferry_store::Val::I(site)],
                    |r| {
                        roles.entry((r.int(0)?, r.int(1)?)).or_default().push(r.parsed(2, "group state", GroupState::parse)?);
                        Ok(())
                    },
                )?;
                let accounts = tx.query_all(
                    "SELECT id FROM accounts WHERE site_id = $1 UNION SELECT account_id FROM site_users WHERE site_id = $1",
                    &[ferry_store::Val::I(site)],
                    |r| r.int(0),
                )?;
                let mut seen = 0;
                for id in accounts {
                    let Some((account, _)) = ferry_store::accounts::site_account(tx, id)? else { continue };
                    let mut by_rule: Vec<String> = requests
                        .iter()
                        .filter(|(request, _, project, reporter, organization)| {
                            can_view_request(&AccessFacts {
                                viewer_active: account.active,
                                in_customer_list: listed.contains(&(*project, id)),
                                role_group_states: roles.get(&(*project, id)).cloned().unwrap_or_default(),
                                is_reporter: *reporter == id,
                                is_participant: participants.contains(&(*request, id)),
                                in_shared_organization: organization.is_some_and(|o| members.contains(&(o, id))),
                            })
                        })
                        .map(|(_, key, ..)| key.clone())
                        .collect();
                    by_rule.sort();
                    seen += by_rule.len();
                    assert_eq!(ferry_store::access::viewable_request_keys(tx, site, account)?, by_rule, "account {id}");
                }
                Ok::<_, ferry_store::StoreError>(seen)
            })
            .unwrap()
    };
    assert!(check(&mut store) > 0, "some customer sees something");
    let group = data.group_name.clone().expect("the demo matches Atlassian accounts");
    decide_group(&mut store, "demo-dst", &group, GroupDecision::Approve).unwrap();
    check(&mut store);
}

on_both_backends!(
    the_access_prefilter_never_hides_what_the_rule_shows,
    group_reviews_and_upgrades_on_a_source_reach_its_copies_and_reruns,
    an_upgrade_makes_an_atlassian_account_of_another_site_a_user_of_this_one,
    requests_gained_is_what_approval_opens,
    copies_after_an_upgrade_follow_the_upgraded_account,
    no_upgrade_while_a_run_into_the_site_is_unfinished,
    approving_the_imported_group_lets_its_members_see_their_requests,
    a_declined_group_leaves_its_members_without_access,
    only_imported_groups_are_reviewed,
    upgrading_the_story_duplicate_shows_requests_under_either_account,
    an_upgrade_moves_every_reference_and_collapses_duplicates,
    an_unverified_atlassian_account_blocks_and_a_missing_one_is_created,
    the_audit_log_records_who_did_what,
);
