//! Snapshot import/export on both backends, over real databases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion
use std::path::Path;

use ferry_core::email::Email;
use ferry_core::model::AccountType;
use ferry_snapshot::{ImportError, Problem, Quiet, export_site, import_site};
use ferry_store::{Store, accounts, sites};
use ferry_testkit::{Backend, TestDb, on_both_backends, story_dir};

const ACCOUNTS: &str = "account_id,account_type,email,display_name,active,email_verified\n";
const PROJECTS: &str = "project_key,name\nSUP,Support\n";

fn sites(store: &mut Store, names: &[&str]) {
    store
        .write(|tx| {
            if sites::org_id(tx, "acme")?.is_none() {
                sites::create_org(tx, "acme")?;
            }
            for name in names {
                sites::create_site(tx, "acme", name)?;
            }
            Ok::<_, ferry_store::StoreError>(())
        })
        .unwrap();
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

fn import(store: &mut Store, site: &str, dir: &Path) -> Result<ferry_snapshot::ImportSummary, ImportError> {
    let imported = import_site(store, site, dir, &mut Quiet);
    // Imported or refused, the customers page's totals are the rows'.
    ferry_testkit::assert_counts_kept(store);
    imported
}

fn problems(store: &mut Store, site: &str, files: &[(&str, &str)]) -> Vec<Problem> {
    let dir = folder(files);
    match import(store, site, dir.path()) {
        Err(ImportError::Invalid(problems)) => problems,
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}

fn assert_problem(problems: &[Problem], file: &str, line: u64, needle: &str) {
    assert!(
        problems.iter().any(|p| p.file == file && p.line == line && p.reason.contains(needle)),
        "no problem {file}:{line} containing {needle:?} in {problems:#?}"
    );
}

fn access(store: &mut Store, site: &str, email: &str, prefer: Option<AccountType>) -> Vec<String> {
    let key = Email::parse(email).unwrap().key().to_owned();
    store
        .read(|tx| {
            let site = sites::site(tx, site)?;
            let account = accounts::find_by_email(tx, site.id, &key, prefer)?.expect("account exists");
            ferry_store::access::viewable_request_keys(tx, site.id, account)
        })
        .unwrap()
}

const TABLES: [&str; 14] = [
    "accounts",
    "site_users",
    "groups",
    "group_members",
    "projects",
    "project_customers",
    "customer_roles",
    "organizations",
    "organization_members",
    "organization_projects",
    "requests",
    "request_participants",
    "comments",
    "sites",
];

fn row_counts(store: &mut Store) -> Vec<(String, i64)> {
    store
        .read(|tx| {
            TABLES
                .iter()
                .map(|t| {
                    Ok((
                        t.to_string(),
                        tx.query_opt(&format!("SELECT COUNT(*) FROM {t}"), &[], |r| r.int(0))?.unwrap_or(0),
                    ))
                })
                .collect::<Result<Vec<_>, ferry_store::StoreError>>()
        })
        .unwrap()
}

fn read_folder(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn story_imports_and_access_follows_the_rule(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu", "us"]);
    import(&mut store, "eu", &story_dir().join("eu")).unwrap();
    import(&mut store, "us", &story_dir().join("us")).unwrap();
    assert_eq!(access(&mut store, "eu", "alice@acme.test", None), ["SUP-1"]);
    assert_eq!(access(&mut store, "eu", "chen@acme.test", None), ["SUP-3"], "email matched on its normalized form");
    assert_eq!(access(&mut store, "us", "fay@acme.test", None), ["HR-1"]);
    assert!(access(&mut store, "us", "chen@acme.test", None).is_empty());
    let eli = store.read(|tx| {
        let us = sites::site(tx, "us")?;
        accounts::find_by_email(tx, us.id, "eli@acme.test", None)
    });
    assert_eq!(eli.unwrap().map(|a| a.account_type), Some(AccountType::Atlassian), "aa-eli is one global account");
}

fn invalid_email_is_reported_with_file_line_and_reason(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!(
        "{ACCOUNTS}po-1,customer,ok@acme.test,A,true,true\npo-2,customer,not-an-email,B,true,true\npo-3,customer,x@,C,true,true\n"
    );
    let found = problems(&mut store, "eu", &[("accounts.csv", &accounts)]);
    assert_problem(&found, "accounts.csv", 3, "no '@'");
    assert_problem(&found, "accounts.csv", 4, "empty domain");
    assert_eq!(found.len(), 2);
}

fn unknown_account_type_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!("{ACCOUNTS}po-1,portal,a@acme.test,A,true,true\npo-2,Customer,b@acme.test,B,true,true\n");
    let found = problems(&mut store, "eu", &[("accounts.csv", &accounts)]);
    assert_problem(&found, "accounts.csv", 2, "account_type \"portal\"");
    assert_problem(&found, "accounts.csv", 3, "account_type \"Customer\"");
}

fn wrong_or_missing_header_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let found = problems(
        &mut store,
        "eu",
        &[
            ("accounts.csv", "id,type,email,name,active,email_verified\npo-1,customer,a@acme.test,A,true,true\n"),
            ("projects.csv", ""),
            ("customer.csv", "project_key,account_id\n"),
        ],
    );
    assert_problem(
        &found,
        "accounts.csv",
        1,
        "header must be `account_id,account_type,email,display_name,active,email_verified`",
    );
    assert_problem(&found, "projects.csv", 1, "missing header row");
    assert_problem(&found, "customer.csv", 0, "unknown snapshot file");
}

fn missing_accounts_file_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let found = problems(&mut store, "eu", &[("projects.csv", PROJECTS)]);
    assert_problem(&found, "accounts.csv", 0, "required file is missing");
}

fn malformed_quoting_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!(
        "{ACCOUNTS}po-1,customer,a@acme.test,\"Ann, the first,true,true\npo-2,customer,b@acme.test,B,true,true\n"
    );
    let found = problems(&mut store, "eu", &[("accounts.csv", &accounts)]);
    assert_problem(&found, "accounts.csv", 2, "expected 6 fields");
    assert_eq!(row_counts(&mut store).iter().find(|(t, _)| t == "accounts").map(|c| c.1), Some(0));
}

fn two_accounts_with_one_email_in_a_site_are_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    // The NFD spelling and the upper case both normalize to one address.
    let accounts = format!(
        "{ACCOUNTS}po-1,customer,jos\u{e9}@acme.test,A,true,true\npo-2,customer,JOSE\u{301}@ACME.test,B,true,true\naa-1,atlassian,jose\u{301}@acme.test,C,true,true\n"
    );
    let found = problems(&mut store, "eu", &[("accounts.csv", &accounts)]);
    assert_problem(&found, "accounts.csv", 3, "already used by portal-only account \"po-1\"");
    assert_eq!(found.len(), 1, "a portal-only and an Atlassian account may share an email: {found:#?}");
}

fn idna_and_unicode_domains_are_one_email(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!(
        "{ACCOUNTS}po-1,customer,anna@bücher.example,A,true,true\npo-2,customer,anna@xn--bcher-kva.example,B,true,true\n"
    );
    let found = problems(&mut store, "eu", &[("accounts.csv", &accounts)]);
    assert_problem(&found, "accounts.csv", 3, "already used by portal-only account");
}

fn one_atlassian_account_one_email_also_across_sites(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu", "us"]);
    let in_one_file =
        format!("{ACCOUNTS}aa-1,atlassian,a@acme.test,A,true,true\naa-2,atlassian,A@acme.test,B,true,true\n");
    let found = problems(&mut store, "eu", &[("accounts.csv", &in_one_file)]);
    assert_problem(&found, "accounts.csv", 3, "already belongs to Atlassian account \"aa-1\"");

    let eu = folder(&[("accounts.csv", &format!("{ACCOUNTS}aa-1,atlassian,a@acme.test,A,true,true\n"))]);
    import(&mut store, "eu", eu.path()).unwrap();
    let other_email = format!("{ACCOUNTS}aa-1,atlassian,other@acme.test,A,true,true\n");
    let found = problems(&mut store, "us", &[("accounts.csv", &other_email)]);
    assert_problem(&found, "accounts.csv", 2, "already has email \"a@acme.test\"");
    let other_id = format!("{ACCOUNTS}aa-9,atlassian,a@acme.test,A,true,true\n");
    let found = problems(&mut store, "us", &[("accounts.csv", &other_id)]);
    assert_problem(&found, "accounts.csv", 2, "already belongs to Atlassian account \"aa-1\"");
    // The same account with the same email on a second site is fine.
    let same = folder(&[("accounts.csv", &format!("{ACCOUNTS}aa-1,atlassian,A@ACME.test,A,true,true\n"))]);
    import(&mut store, "us", same.path()).unwrap();
}

fn portal_only_account_cannot_join_a_group(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!("{ACCOUNTS}po-1,customer,a@acme.test,A,true,true\naa-1,atlassian,b@acme.test,B,true,true\n");
    let found = problems(
        &mut store,
        "eu",
        &[("accounts.csv", &accounts), ("groups.csv", "group_name,account_id\nvip,aa-1\nvip,po-1\n")],
    );
    assert_problem(&found, "groups.csv", 3, "portal-only account \"po-1\" cannot be a member of group \"vip\"");
    assert_eq!(found.len(), 1);
}

fn references_to_unknown_entities_are_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!("{ACCOUNTS}po-1,customer,a@acme.test,A,true,true\n");
    let found = problems(
        &mut store,
        "eu",
        &[
            ("accounts.csv", &accounts),
            ("projects.csv", PROJECTS),
            ("customers.csv", "project_key,account_id\nNOPE,po-1\nSUP,ghost\n"),
            ("groups.csv", "group_name,account_id\nvip,\n"),
            ("customer_roles.csv", "project_key,group_name\nSUP,VIP\nSUP,nobody\n"),
            ("organizations.csv", "organization,account_id\nAcme,po-1\nAcme,ghost\n"),
            ("organization_projects.csv", "organization,project_key\nAcme,SUP\nGlobex,SUP\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
                 SUP-1,SUP,s,Open,2026-03-01T09:00:00Z,po-1,ghost;po-1,\n\
                 SUP-2,SUP,s,Open,2026-03-01T09:00:00Z,nobody,,\n\
                 SUP-3,SUP,s,Open,2026-03-01T09:00:00Z,po-1,,Globex\n",
            ),
            (
                "comments.csv",
                "request_key,author_id,created,body\nSUP-9,po-1,2026-03-01T09:00:00Z,hi\nSUP-1,ghost,2026-03-01T09:00:00Z,hi\n",
            ),
        ],
    );
    assert_problem(&found, "customers.csv", 2, "project_key \"NOPE\"");
    assert_problem(&found, "customers.csv", 3, "account_id \"ghost\"");
    assert_problem(&found, "customer_roles.csv", 3, "group_name \"nobody\"");
    assert_problem(&found, "organizations.csv", 3, "account_id \"ghost\"");
    assert_problem(&found, "organization_projects.csv", 3, "organization \"Globex\"");
    assert_problem(&found, "requests.csv", 2, "participant \"ghost\"");
    assert_problem(&found, "requests.csv", 3, "reporter_id \"nobody\"");
    assert_problem(&found, "requests.csv", 4, "organization \"Globex\"");
    assert_problem(&found, "comments.csv", 2, "request_key \"SUP-9\"");
    assert_problem(&found, "comments.csv", 3, "author_id \"ghost\"");
    assert_eq!(found.len(), 10, "group names match case-insensitively: {found:#?}");
}

fn request_keys_are_unique_and_belong_to_their_project(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!("{ACCOUNTS}po-1,customer,a@acme.test,A,true,true\n");
    let found = problems(
        &mut store,
        "eu",
        &[
            ("accounts.csv", &accounts),
            ("projects.csv", "project_key,name\nSUP,Support\nHR,People\n"),
            (
                "requests.csv",
                "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
                 SUP-1,SUP,s,Open,2026-03-01T09:00:00Z,po-1,,\n\
                 SUP-1,SUP,again,Open,2026-03-01T09:00:00Z,po-1,,\n\
                 HR-2,SUP,s,Open,2026-03-01T09:00:00Z,po-1,,\n\
                 SUP-3,SUP,s,Open,last tuesday,po-1,,\n",
            ),
        ],
    );
    assert_problem(&found, "requests.csv", 3, "duplicate request_key \"SUP-1\" (first on line 2)");
    assert_problem(&found, "requests.csv", 4, "does not belong to project \"SUP\"");
    assert_problem(&found, "requests.csv", 5, "not RFC 3339");
    assert_eq!(found.len(), 3);
}

fn every_problem_is_reported_in_one_pass(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!(
        "{ACCOUNTS}po-1,customer,bad,A,true,true\npo-2,customer,b@acme.test,B,maybe,true\npo-3,customer,c@acme.test,C,true,true\npo-3,customer,d@acme.test,D,true,true\n"
    );
    let found =
        problems(&mut store, "eu", &[("accounts.csv", &accounts), ("projects.csv", "project_key,name\nsup,Support\n")]);
    let lines: Vec<(String, u64)> = found.iter().map(|p| (p.file.clone(), p.line)).collect();
    assert_eq!(
        lines,
        [
            ("accounts.csv".to_owned(), 2),
            ("accounts.csv".to_owned(), 3),
            ("accounts.csv".to_owned(), 5),
            ("projects.csv".to_owned(), 2)
        ]
    );
}

fn a_refused_import_writes_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu", "us"]);
    import(&mut store, "eu", &story_dir().join("eu")).unwrap();
    let before = row_counts(&mut store);
    let exported_before = tempfile::tempdir().unwrap();
    export_site(&mut store, "eu", exported_before.path()).unwrap();
    // Good rows first, then one bad row at the very end of the last file.
    let accounts = format!(
        "{ACCOUNTS}po-new,customer,new@acme.test,New,true,true\npo-alice,customer,alice@acme.test,Alice Renamed,true,true\n"
    );
    let found = problems(
        &mut store,
        "eu",
        &[
            ("accounts.csv", &accounts),
            ("projects.csv", "project_key,name\nSUP,Renamed\nNEW,New project\n"),
            ("customers.csv", "project_key,account_id\nNEW,po-new\n"),
            (
                "comments.csv",
                "request_key,author_id,created,body\nSUP-1,po-new,2026-03-01T09:00:00Z,hi\nSUP-1,po-new,never,hi\n",
            ),
        ],
    );
    assert_eq!(found.len(), 1);
    assert_eq!(row_counts(&mut store), before);
    let exported_after = tempfile::tempdir().unwrap();
    export_site(&mut store, "eu", exported_after.path()).unwrap();
    assert_eq!(read_folder(exported_before.path()), read_folder(exported_after.path()));
}

fn export_import_export_is_identical(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 400, 7, &mut Quiet).unwrap();
    sites(&mut store, &["copy-a", "copy-b"]);
    let first = tempfile::tempdir().unwrap();
    export_site(&mut store, "demo-src", first.path()).unwrap();
    import(&mut store, "copy-a", first.path()).unwrap();
    let second = tempfile::tempdir().unwrap();
    export_site(&mut store, "copy-a", second.path()).unwrap();
    assert_eq!(read_folder(first.path()), read_folder(second.path()));
    let files = read_folder(second.path());
    assert_eq!(files.len(), 9, "every snapshot file is exported");
    for (name, body) in &files {
        assert!(body.lines().count() > 1, "{name} has rows");
    }
    // The destination too: portal-only ids repeat on another site without conflict.
    let third = tempfile::tempdir().unwrap();
    export_site(&mut store, "demo-dst", third.path()).unwrap();
    import(&mut store, "copy-b", third.path()).unwrap();
    let fourth = tempfile::tempdir().unwrap();
    export_site(&mut store, "copy-b", fourth.path()).unwrap();
    assert_eq!(read_folder(third.path()), read_folder(fourth.path()));
}

fn importing_the_same_folder_twice_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    ferry_snapshot::demo::load_demo(&mut store, 120, 3, &mut Quiet).unwrap();
    let exported = tempfile::tempdir().unwrap();
    export_site(&mut store, "demo-src", exported.path()).unwrap();
    let before = row_counts(&mut store);
    import(&mut store, "demo-src", exported.path()).unwrap();
    assert_eq!(row_counts(&mut store), before);
    let again = tempfile::tempdir().unwrap();
    export_site(&mut store, "demo-src", again.path()).unwrap();
    assert_eq!(read_folder(exported.path()), read_folder(again.path()));
}

fn reimport_adds_new_ids_and_updates_existing_ones(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    import(&mut store, "eu", &story_dir().join("eu")).unwrap();
    let update = folder(&[
        (
            "accounts.csv",
            &format!(
                "{ACCOUNTS}po-alice,customer,alice@acme.test,Alice A.,false,true\npo-zoe,customer,zoe@acme.test,Zoe,true,true\n"
            ),
        ),
        ("customers.csv", "project_key,account_id\nSUP,po-zoe\n"),
        (
            "requests.csv",
            "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
             SUP-1,SUP,Cannot log in,Resolved,2026-03-01T09:00:00Z,po-alice,po-zoe,\n\
             SUP-7,SUP,New one,Open,2026-03-07T09:00:00Z,po-zoe,,\n",
        ),
    ]);
    import(&mut store, "eu", update.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    export_site(&mut store, "eu", out.path()).unwrap();
    let accounts = std::fs::read_to_string(out.path().join("accounts.csv")).unwrap();
    assert!(accounts.contains("po-alice,customer,alice@acme.test,Alice A.,false,true"), "{accounts}");
    assert!(accounts.contains("po-zoe,customer,zoe@acme.test,Zoe,true,true"));
    assert_eq!(accounts.lines().count(), 8);
    let requests = std::fs::read_to_string(out.path().join("requests.csv")).unwrap();
    assert!(requests.contains("SUP-1,SUP,Cannot log in,Resolved,2026-03-01T09:00:00Z,po-alice,po-zoe,"), "{requests}");
    assert!(requests.contains("SUP-7,SUP,New one,Open"));
    assert!(requests.contains("SUP-2,SUP,Invoice missing"), "rows missing from the file stay");
    assert!(access(&mut store, "eu", "alice@acme.test", None).is_empty(), "inactive now");
    assert_eq!(access(&mut store, "eu", "zoe@acme.test", None), ["SUP-1", "SUP-7"]);
}

fn within_a_site_an_id_names_one_account_and_reimports_catch_duplicates(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu", "us"]);
    import(&mut store, "eu", &story_dir().join("eu")).unwrap();
    // aa-dana is an Atlassian account of eu: eu cannot also have a portal-only aa-dana.
    let found = problems(
        &mut store,
        "eu",
        &[("accounts.csv", &format!("{ACCOUNTS}aa-dana,customer,dana2@acme.test,D,true,true\n"))],
    );
    assert_problem(&found, "accounts.csv", 2, "cannot also be a portal-only account");
    // po-alice is portal-only on eu: it cannot become an Atlassian account there...
    let found = problems(
        &mut store,
        "eu",
        &[("accounts.csv", &format!("{ACCOUNTS}po-alice,atlassian,alice@acme.test,A,true,true\n"))],
    );
    assert_problem(&found, "accounts.csv", 2, "cannot also be an Atlassian account");
    // ...but another site may use the id for its own portal-only account.
    let us = folder(&[("accounts.csv", &format!("{ACCOUNTS}po-alice,customer,someone@acme.test,S,true,true\n"))]);
    import(&mut store, "us", us.path()).unwrap();
    // A request already on the site, listed twice in a re-import.
    let twice = "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
                 SUP-1,SUP,a,Open,2026-03-01T09:00:00Z,po-alice,,\n\
                 SUP-1,SUP,b,Open,2026-03-01T09:00:00Z,po-alice,,\n";
    let found = problems(&mut store, "eu", &[("accounts.csv", ACCOUNTS), ("requests.csv", twice)]);
    assert_problem(&found, "requests.csv", 3, "duplicate request_key \"SUP-1\" (first on line 2)");
}

fn access_through_groups_organizations_and_participants(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu"]);
    let accounts = format!(
        "{ACCOUNTS}aa-g,atlassian,grace@acme.test,Grace,true,true\npo-o,customer,oscar@acme.test,Oscar,true,true\n\
         po-p,customer,pia@acme.test,Pia,true,true\npo-r,customer,rita@acme.test,Rita,true,true\n\
         po-x,customer,xavier@acme.test,Xavier,true,true\n"
    );
    let dir = folder(&[
        ("accounts.csv", &accounts),
        ("projects.csv", "project_key,name\nSUP,Support\nITS,IT\n"),
        ("groups.csv", "group_name,account_id\nVIP,aa-g\n"),
        ("customer_roles.csv", "project_key,group_name\nITS,vip\n"),
        ("customers.csv", "project_key,account_id\nSUP,po-o\nSUP,po-p\nSUP,po-r\nITS,po-r\n"),
        ("organizations.csv", "organization,account_id\nAcme,po-o\nAcme,po-r\nAcme,po-x\n"),
        ("organization_projects.csv", "organization,project_key\nAcme,SUP\n"),
        (
            "requests.csv",
            "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\n\
             ITS-1,ITS,s,Open,2026-03-01T09:00:00Z,aa-g,,\n\
             SUP-1,SUP,s,Open,2026-03-01T09:00:00Z,po-r,po-p,Acme\n\
             SUP-2,SUP,s,Open,2026-03-01T09:00:00Z,po-r,,\n\
             SUP-10,SUP,s,Open,2026-03-01T09:00:00Z,aa-g,,\n",
        ),
    ]);
    import(&mut store, "eu", dir.path()).unwrap();
    assert_eq!(
        access(&mut store, "eu", "grace@acme.test", None),
        ["ITS-1"],
        "role through an active group; SUP needs the list"
    );
    assert_eq!(access(&mut store, "eu", "oscar@acme.test", None), ["SUP-1"], "organization member");
    assert_eq!(access(&mut store, "eu", "pia@acme.test", None), ["SUP-1"], "participant");
    assert_eq!(access(&mut store, "eu", "rita@acme.test", None), ["SUP-1", "SUP-2"]);
    assert!(
        access(&mut store, "eu", "xavier@acme.test", None).is_empty(),
        "organization member without customer access"
    );
}

fn the_demo_loads_every_case(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    let counts = ferry_snapshot::demo::load_demo(&mut store, 500, 11, &mut Quiet).unwrap();
    assert!(counts.per_case.iter().all(|(_, n)| *n > 0), "{counts:?}");
    assert!(counts.source_requests >= 800 && counts.source_requests <= 1200, "about two requests per customer");
    let duplicates = store
        .read(|tx| {
            let dst = sites::site(tx, "demo-dst")?;
            let mut n = 0;
            accounts::each_customer(
                tx,
                dst.id,
                accounts::CustomerFilter { account_type: None, duplicates_only: true },
                |_| {
                    n += 1;
                    Ok(())
                },
            )?;
            Ok::<_, ferry_store::StoreError>(n)
        })
        .unwrap();
    assert!(duplicates > 0, "the destination already holds both types for some emails");
    let again = ferry_snapshot::demo::load_demo(&mut store, 10, 1, &mut Quiet);
    assert!(again.is_err(), "a second demo into the same database is refused");
}

/// SPEC §7: `state` in groups.csv. Export writes it, import reads it; an
/// older two-column file still imports; rows of a group agree; a snapshot
/// never changes the review state of a group already on the site.
fn group_states_round_trip_and_never_change_by_import(backend: Backend) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    sites(&mut store, &["eu", "us"]);
    let accounts =
        format!("{ACCOUNTS}aa-1,atlassian,a@acme.test,A,true,true\naa-2,atlassian,b@acme.test,B,true,true\n");
    let groups =
        "group_name,account_id,state\npending,aa-1,awaiting_review\npending,aa-2,\nno,aa-1,declined\nplain,aa-2,\n";
    let dir = folder(&[
        ("accounts.csv", &accounts),
        ("projects.csv", PROJECTS),
        ("groups.csv", groups),
        ("customer_roles.csv", "project_key,group_name\nSUP,pending\nSUP,no\nSUP,plain\n"),
    ]);
    import(&mut store, "eu", dir.path()).unwrap();
    // Only the active group grants the Customer role.
    assert!(access(&mut store, "eu", "a@acme.test", None).is_empty());
    let exported = tempfile::tempdir().unwrap();
    export_site(&mut store, "eu", exported.path()).unwrap();
    let written = std::fs::read_to_string(exported.path().join("groups.csv")).unwrap();
    assert_eq!(
        written,
        "group_name,account_id,state\nno,aa-1,declined\npending,aa-1,awaiting_review\npending,aa-2,awaiting_review\nplain,aa-2,active\n"
    );
    import(&mut store, "us", exported.path()).unwrap();
    let again = tempfile::tempdir().unwrap();
    export_site(&mut store, "us", again.path()).unwrap();
    assert_eq!(std::fs::read_to_string(again.path().join("groups.csv")).unwrap(), written);

    // The same state, or none, for a group on the site: fine; another: refused.
    import(
        &mut store,
        "eu",
        folder(&[
            ("accounts.csv", ACCOUNTS),
            ("groups.csv", "group_name,account_id,state\npending,,awaiting_review\npending,,\n"),
        ])
        .path(),
    )
    .unwrap();
    let found = problems(
        &mut store,
        "eu",
        &[("accounts.csv", ACCOUNTS), ("groups.csv", "group_name,account_id,state\nPending,aa-2,active\n")],
    );
    assert_problem(&found, "groups.csv", 2, "is awaiting_review on site eu; a snapshot does not change");
    // An older file without the column: new groups are active, old ones stay.
    import(
        &mut store,
        "eu",
        folder(&[("accounts.csv", ACCOUNTS), ("groups.csv", "group_name,account_id\npending,aa-1\nfresh,aa-1\n")])
            .path(),
    )
    .unwrap();
    export_site(&mut store, "eu", exported.path()).unwrap();
    let now = std::fs::read_to_string(exported.path().join("groups.csv")).unwrap();
    assert!(now.contains("fresh,aa-1,active\n") && now.contains("pending,aa-1,awaiting_review\n"), "{now}");
    // Rows of one new group must agree (empty meaning active); a bad value
    // is named.
    let found = problems(
        &mut store,
        "us",
        &[
            ("accounts.csv", ACCOUNTS),
            (
                "groups.csv",
                "group_name,account_id,state\nnew,aa-1,\nnew,aa-2,active\nnewer,aa-1,\nnewer,aa-2,declined\nodd,aa-1,maybe\n",
            ),
        ],
    );
    assert_problem(&found, "groups.csv", 5, "has state declined here but active on line 4");
    assert_problem(
        &found,
        "groups.csv",
        6,
        "state \"maybe\" of group \"odd\" must be active, awaiting_review or declined",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
}

on_both_backends!(
    group_states_round_trip_and_never_change_by_import,
    story_imports_and_access_follows_the_rule,
    invalid_email_is_reported_with_file_line_and_reason,
    unknown_account_type_is_refused,
    wrong_or_missing_header_is_refused,
    missing_accounts_file_is_refused,
    malformed_quoting_is_refused,
    two_accounts_with_one_email_in_a_site_are_refused,
    idna_and_unicode_domains_are_one_email,
    one_atlassian_account_one_email_also_across_sites,
    portal_only_account_cannot_join_a_group,
    references_to_unknown_entities_are_refused,
    request_keys_are_unique_and_belong_to_their_project,
    every_problem_is_reported_in_one_pass,
    a_refused_import_writes_nothing,
    export_import_export_is_identical,
    importing_the_same_folder_twice_changes_nothing,
    reimport_adds_new_ids_and_updates_existing_ones,
    within_a_site_an_id_names_one_account_and_reimports_catch_duplicates,
    access_through_groups_organizations_and_participants,
    the_demo_loads_every_case,
);

#[test]
fn the_same_seed_gives_the_same_demo() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    for (dir, seed) in [(&a, 5), (&b, 5), (&c, 6)] {
        ferry_snapshot::demo::write_demo(&dir.path().join("src"), &dir.path().join("dst"), 300, seed).unwrap();
    }
    assert_eq!(read_folder(&a.path().join("src")), read_folder(&b.path().join("src")));
    assert_eq!(read_folder(&a.path().join("dst")), read_folder(&b.path().join("dst")));
    assert_ne!(read_folder(&a.path().join("src")), read_folder(&c.path().join("src")));
}
