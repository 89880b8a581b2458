//! The conformance suite over the network (`presence-sync conformance --target FILE`), run as
//! a server project's CI would run it: against `presence-sync serve` started as a separate
//! process (every scenario passes), against its broken variants (each is caught by a failing
//! check that names the requirement it breaks), and against an unmodified Prosody 0.12
//! (reported as not implementing the XEP, the legacy checks passing, accounts made by
//! XEP-0077 in-band registration, or by XEP-0133 "Add User" as an admin with in-band
//! registration off).
//!
//! Each test leases its own loopback addresses, writes its configs and target file into its
//! own directory, and stops every server by its PID (the one it started, and the one the
//! suite's restarts left running, read from the PID file).

mod net;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use net::{Client, Lease, Process, Prosody, Result, TestDir, lease, wait_for_port};
use tokio_xmpp::jid::BareJid;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_presence-sync"))
}

/// The bound of a whole wire run (it takes seconds on loopback; minutes on a loaded machine,
/// and against a broken variant whose views never come right, every wait runs to its end).
const RUN: Duration = Duration::from_secs(420);

/// Runs `conformance --target` on `target` in `dir`, with JUnit and JSON reports there; only
/// the wire scenarios `scenarios` if given; `extra` arguments after the others.
fn run_suite(
    dir: &Path,
    target: &str,
    scenarios: Option<&str>,
    extra: &[&str],
) -> Result<(Output, String, String)> {
    std::fs::write(dir.join("target.toml"), target)?;
    let mut command = Command::new(bin());
    command
        .args([
            "conformance",
            "--target",
            "target.toml",
            "--junit",
            "junit.xml",
        ])
        .args(["--json", "report.json", "--verbose"]);
    if let Some(s) = scenarios {
        command.args(["--scenarios", s]);
    }
    command.args(extra);
    // The output goes to files, not pipes: a verbose report of a failing run is larger than a
    // pipe holds, and the run would block writing it while this test waits for it to end.
    let (out, err) = (dir.join("suite.stdout"), dir.join("suite.stderr"));
    let mut child = command
        .current_dir(dir)
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > RUN {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the wire run took more than {RUN:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out)?,
        stderr: std::fs::read(&err)?,
    };
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap_or_default();
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap_or_default();
    Ok((output, junit, json))
}

/// `presence-sync serve` for a.test on `a`, its peer b.test reached at `peer`; it keeps its
/// caches of the peer across a graceful restart, so that `long-outage` exercises PS-81.
fn serve_config(a: &Lease, peer: &Lease) -> String {
    format!(
        "domain = 'a.test'\nc2s = '{}'\ns2s = '{}'\ndatabase = 'a.sqlite'\nregistration = true\n\
         pid-file = 'a.pid'\nlog = 'presence_sync=info'\n\
         [sync]\nsmall-peer = 0\ngrace = 5\npersist-caches = true\n[peers]\n'b.test' = '{}'\n",
        a.c2s(),
        a.s2s(),
        peer.s2s()
    )
}

fn serve_target(a: &Lease, peer: &Lease, mutation: Option<&str>) -> String {
    let extra = mutation
        .map(|m| format!(" --mutation {m}"))
        .unwrap_or_default();
    format!(
        "name = 'presence-sync serve'\ndomain = 'a.test'\nc2s = '{}'\ns2s = '{}'\n\
         small-peer = 0\ngrace = 5\n\
         [peer]\ndomain = 'b.test'\nlisten = '{}'\n[accounts]\nmethod = 'register'\n\
         [control]\nstart = \"exec '{}' serve --config a.toml{extra} >> a.log 2>&1\"\n\
         pid-file = 'a.pid'\n",
        a.c2s(),
        a.s2s(),
        peer.s2s(),
        bin().display()
    )
}

/// Stops the server whose PID is in `pid_file` (SIGTERM, then SIGKILL), if it still runs.
fn stop_by_pid_file(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) with the PID of the server this test (or the suite it ran) started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..50 {
        // SAFETY: as above; signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// `--trace trace`: a trace per scenario run, holding what crossed the link both ways; the
/// report names the trace of each failing scenario, and that file exists.
fn traces_are_written(dir: &Path, stdout: &str) -> Result<()> {
    let traces: Vec<_> = std::fs::read_dir(dir.join("trace"))?.collect::<std::io::Result<_>>()?;
    if traces.is_empty() {
        return Err("no trace written".into());
    }
    for t in &traces {
        let text = std::fs::read_to_string(t.path())?;
        let both = text.contains("a.test → b.test") && text.contains("b.test → a.test");
        let hostile = t.file_name() == "hostile.log"; // its streams are the suite's own
        if !both && !hostile && !text.is_empty() {
            return Err(format!("{}: not both directions:\n{text}", t.path().display()).into());
        }
    }
    for line in stdout
        .lines()
        .filter(|l| l.contains("the stanzas of this run: "))
    {
        let path = line
            .rsplit("the stanzas of this run: ")
            .next()
            .unwrap_or_default();
        if !dir.join(path).is_file() {
            return Err(format!("the report names {path}, which is not there").into());
        }
    }
    Ok(())
}

/// The suite against `serve` (with `mutation`, if any; only the wire scenarios `scenarios` if
/// given; `users` a side, or the suite's default): the run's output and reports.
async fn against_serve(
    name: &str,
    mutation: Option<&str>,
    scenarios: Option<&str>,
    users: Option<&str>,
) -> Result<(Output, String, String)> {
    let dir = TestDir::new(name)?;
    let outcome = async {
        let (a, peer) = (lease()?, lease()?);
        std::fs::write(dir.path().join("a.toml"), serve_config(&a, &peer))?;
        let mut command = Command::new(bin());
        command
            .args(["serve", "--config", "a.toml"])
            .current_dir(dir.path());
        if let Some(m) = mutation {
            command.args(["--mutation", m]);
        }
        let mut first = Process::spawn("a.test", command, dir.path())?;
        let mut extra = vec!["--trace", "trace"];
        if let Some(u) = users {
            extra.extend(["--users", u]);
        }
        wait_for_port(a.s2s(), Duration::from_secs(20)).await?;
        let result = run_suite(
            dir.path(),
            &serve_target(&a, &peer, mutation),
            scenarios,
            &extra,
        );
        // The server the suite restarted is not this test's child: stop it by its PID file.
        stop_by_pid_file(&dir.path().join("a.pid"));
        let _ = first.terminate(Duration::from_secs(5));
        let (output, junit, json) = result?;
        traces_are_written(dir.path(), &String::from_utf8_lossy(&output.stdout))?;
        Ok((output, junit, json))
    }
    .await;
    dir.finish(outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_passes_every_wire_scenario() -> Result<()> {
    // 33 users a side: the reference sizes a refilled cache's tree for over 32 entries with a
    // level below the root, so that the link losses after the restarts split the root (PS-27,
    // PS-28).
    let (output, junit, json) = against_serve("wire-reference", None, None, Some("33")).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("urn:xmpp:presence-sync:0: implemented"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Every scenario ran: fourteen test cases, none failed or skipped.
    assert_eq!(junit.matches("<testcase").count(), 14, "{junit}");
    assert!(
        junit.contains("failures='0'") && junit.contains("skipped='0'"),
        "{junit}"
    );
    assert!(
        !junit.contains("<failure") && !junit.contains("<skipped"),
        "{junit}"
    );
    let report: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(report["passed"], true, "{json}");
    // The MUSTs a wire run does not exercise yet are exactly those the README names.
    let uncovered: Vec<&str> = report["requirements"]
        .as_array()
        .ok_or("no requirements")?
        .iter()
        .filter(|r| r["level"] == "MUST" && r["status"] == "not-covered")
        .filter_map(|r| r["id"].as_str())
        .collect();
    let readme = include_str!("../README.md");
    let named = readme
        .split("MUSTs not exercised over the wire yet: ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .ok_or("the README does not name the MUSTs a wire run leaves")?;
    let named: Vec<&str> = match named.trim() {
        "none" => Vec::new(),
        list => list.split(", ").map(str::trim).collect(),
    };
    assert_eq!(
        uncovered, named,
        "README: {named:?}, the run: {uncovered:?}"
    );
    // The SHOULD about kept caches is exercised, the serve of this test keeping them.
    let status = |id: &str| {
        report["requirements"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["id"] == id))
            .map(|r| r["status"].clone())
    };
    assert_eq!(status("PS-81"), Some("pass".into()), "{json}");
    let musts = report["requirements"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["level"] == "MUST").count());
    let counts = format!(
        "exercises\n{} of the {musts} MUSTs.",
        musts - uncovered.len()
    );
    assert!(readme.contains(&counts), "README lacks {counts:?}");
    // The wire run's JSON report has the documented format too.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../conformance/report.schema.json"))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    Ok(())
}

/// The broken variants of the reference the wire scenarios catch, each with a requirement a
/// failing check must name.
const CAUGHT: [(&str, &str); 4] = [
    ("ignore-new-epoch", "PS-13"),
    ("forget-one-subscriber", "PS-44"),
    ("never-reverify", "PS-19"),
    ("per-edge-presence", "PS-66"),
];

async fn caught(mutation: &str, requirement: &str) -> Result<()> {
    caught_by(mutation, requirement, None).await.map(|_| ())
}

/// `mutation` makes the run fail, with a failing check that names `requirement`, in a run of
/// the wire scenarios `scenarios` (all if `None`); the JUnit report.
async fn caught_by(mutation: &str, requirement: &str, scenarios: Option<&str>) -> Result<String> {
    caught_with(mutation, requirement, scenarios, None).await
}

/// As [`caught_by`], with `users` a side.
async fn caught_with(
    mutation: &str,
    requirement: &str,
    scenarios: Option<&str>,
    users: Option<&str>,
) -> Result<String> {
    let (output, junit, _) = against_serve(
        &format!("wire-{mutation}"),
        Some(mutation),
        scenarios,
        users,
    )
    .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{mutation} passed:\n{stdout}");
    let failing: Vec<&str> = junit
        .split("<failure")
        .skip(1)
        .filter(|f| f.contains(requirement))
        .collect();
    assert!(
        !failing.is_empty(),
        "{mutation}: no failing check names {requirement}:\n{junit}"
    );
    Ok(junit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_a_new_epoch_is_caught() -> Result<()> {
    caught(CAUGHT[0].0, CAUGHT[0].1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_subscriber_is_caught() -> Result<()> {
    caught(CAUGHT[1].0, CAUGHT[1].1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reverifying_is_caught() -> Result<()> {
    caught(CAUGHT[2].0, CAUGHT[2].1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_edge_presence_is_caught() -> Result<()> {
    caught(CAUGHT[3].0, CAUGHT[3].1).await
}

/// Live changes held until the resync's bulk is done: with 33 users a side the subject's
/// resync in changes-during-sync needs queries after the first answer, and the live changes
/// made meanwhile must cross before them (PS-52).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_behind_bulk_are_caught() -> Result<()> {
    let junit = caught_with("live-behind-bulk", "PS-52", None, Some("33")).await?;
    let failing = junit.split("<failure").skip(1).collect::<Vec<_>>();
    assert!(
        failing.iter().all(|f| f.contains("PS-52")),
        "a check other than PS-52's failed:\n{junit}"
    );
    Ok(())
}

/// Caught by the hostile peer (the `hostile` scenario alone, after the set-up): items and
/// excepts of the wrong domain are accepted instead of refused with `<foreign-jid/>`, and a
/// spoofed state of a peer user is shown to the subject's users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_foreign_jids_is_caught_by_the_hostile_peer() -> Result<()> {
    let junit = caught_by("trust-foreign-jid", "PS-39", Some("hostile")).await?;
    // Not only the answer: the spoofed state reached the subject's users.
    let shown = junit
        .split("<failure")
        .skip(1)
        .any(|f| f.contains("nothing-applied [PS-39]"));
    assert!(shown, "no failing state check names PS-39:\n{junit}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_is_reported_as_legacy_and_its_rfc_6121_checks_pass() -> Result<()> {
    let dir = TestDir::new("wire-prosody")?;
    let outcome = async {
        let (a, peer) = (lease()?, lease()?);
        let mut prosody = Prosody::builder("a.test", &a)
            .resolve("b.test", peer.ip())
            .start(&dir)
            .await?;
        let home = prosody.home().to_path_buf();
        let target = format!(
            "name = 'Prosody 0.12'\ndomain = 'a.test'\nc2s = '{}'\ns2s = '{}'\n\
             [peer]\ndomain = 'b.test'\nlisten = '{}'\n[accounts]\nmethod = 'register'\n\
             [control]\nstart = \"exec prosody --config '{}' -F\"\npid-file = '{}'\n",
            a.c2s(),
            a.s2s(),
            peer.s2s(),
            home.join("prosody.cfg.lua").display(),
            home.join("prosody.pid").display()
        );
        // Prosody does not implement the XEP, so it has no small-peer threshold to exceed:
        // the suite's smallest world is enough for the legacy checks.
        let result = run_suite(dir.path(), &target, None, &["--users", "6"]);
        let _ = prosody.stop();
        let (output, junit, _) = result?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("urn:xmpp:presence-sync:0: not implemented"),
            "{stdout}"
        );
        // The scenarios of the extension are not run, with the reason; discovery and the
        // legacy scenario (RFC 6121 towards a legacy peer) run and pass.
        assert!(
            stdout.contains("a.test does not implement urn:xmpp:presence-sync:0"),
            "{stdout}"
        );
        assert!(!stdout.contains("FAIL  "), "{stdout}");
        assert_eq!(junit.matches("<testcase").count(), 14, "{junit}");
        assert_eq!(junit.matches("<skipped").count(), 12, "{junit}");
        assert!(!junit.contains("<failure"), "{junit}");
        for pass in ["pass legacy/truth ", "pass discovery/setup-truth "] {
            assert!(junit.contains(pass), "{pass}: {junit}");
        }
        Ok(())
    }
    .await;
    dir.finish(outcome)
}

/// Accounts made by an admin with XEP-0133 "Add User" (XEP-0050 ad-hoc commands,
/// `[accounts] method = 'admin'`) on a Prosody whose in-band registration is off: the admin
/// is made with `prosodyctl register`, the suite's accounts only through the commands, and
/// discovery and the legacy scenario (whose set-up logs every account in) pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_accounts_are_made_by_xep_0133_add_user() -> Result<()> {
    let dir = TestDir::new("wire-prosody-admin")?;
    let outcome = async {
        let (a, peer) = (lease()?, lease()?);
        let mut prosody = Prosody::builder("a.test", &a)
            .resolve("b.test", peer.ip())
            .registration(false)
            .module("admin_adhoc")
            .global("admins = { \"admin@a.test\" }")
            .start(&dir)
            .await?;
        let target = format!(
            "name = 'Prosody 0.12 (XEP-0133 accounts)'\ndomain = 'a.test'\nc2s = '{}'\n\
             s2s = '{}'\n[peer]\ndomain = 'b.test'\nlisten = '{}'\n[accounts]\n\
             method = 'admin'\njid = 'admin@a.test'\npassword = 'admin-secret'\n",
            a.c2s(),
            a.s2s(),
            peer.s2s(),
        );
        let result = async {
            prosody.prosodyctl_register("admin", "admin-secret")?;
            // In-band registration is off, so the accounts can only come from the commands.
            let probe = BareJid::new("probe@a.test")?;
            let refused = Client::register(prosody.c2s(), &probe, "pw").await;
            assert!(refused.is_err(), "in-band registration is on");
            run_suite(
                dir.path(),
                &target,
                Some("discovery,legacy"),
                &["--users", "6"],
            )
        }
        .await;
        let _ = prosody.stop();
        let (output, junit, _) = result?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(!stdout.contains("FAIL  "), "{stdout}");
        assert_eq!(junit.matches("<testcase").count(), 2, "{junit}");
        assert!(
            !junit.contains("<failure") && !junit.contains("<skipped"),
            "{junit}"
        );
        for pass in ["pass legacy/truth ", "pass discovery/setup-truth "] {
            assert!(junit.contains(pass), "{pass}: {junit}");
        }
        // Prosody made the six accounts on the admin's commands, and they are on its disk.
        let log = prosody.log();
        let created = log
            .lines()
            .filter(|l| l.contains("Created new account ps-") && l.contains("by admin@a.test"))
            .count();
        assert_eq!(created, 6, "{log}");
        let accounts = std::fs::read_dir(prosody.home().join("data/a%2etest/accounts"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("ps"))
            .count();
        assert_eq!(accounts, 6);
        Ok(())
    }
    .await;
    dir.finish(outcome)
}
