//! The command line at the edges of its workload parameters: a bad flag is a usage error
//! (a message and exit status 2), never a panic (exit status 101); a good one runs.

use std::process::{Command, Output};

use presence_sync::conformance::{MAX_CHANGES, MAX_HUB_PEERS, MAX_USERS};
use proptest::prelude::*;

fn conformance(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_presence-sync"))
        .arg("conformance")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn bad_flags_are_usage_errors() {
    let cases: &[&[&str]] = &[
        &["--online", "1.5"],
        &["--online=-0.1"],
        &["--online", "NaN"],
        &["--online", "inf"],
        &["--online", "half"],
        &["--users", "0"],
        &["--users=-3"],
        &["--users", "99999999999"],
        &["--hub-peers", "0"],
        &["--changes=-1"],
        &["--preset", "enormous"],
        &["--scenarios", "no-such-scenario"],
        &["--scenarios", ""],
        &["--json-full"],
    ];
    for case in cases {
        let out = conformance(&args(case));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{case:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case:?}: {stderr}");
    }
}

/// A workload parameter: at its edges (and beyond them) more often than in between.
fn users() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(u64::from(MAX_USERS) + 1),
        Just(u64::from(u32::MAX)),
        1u64..=6,
    ]
    .prop_map(|u| u.to_string())
}

fn fraction() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("-0".to_owned()),
        Just("1.0000001".to_owned()),
        Just("-1e-9".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("1e308".to_owned()),
        (0.0f64..=1.0).prop_map(|f| f.to_string()),
    ]
}

fn count(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![Just(0usize), Just(1), Just(2), Just(max + 1), 1usize..=4]
        .prop_map(|n| n.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Whatever the workload parameters, the command either refuses them (exit 2, with a
    /// message naming the flag) or runs the scenarios (exit 0 or 1), never panics; it refuses
    /// exactly the values out of range.
    #[test]
    fn workload_parameters_at_their_edges(
        users in users(),
        online in fraction(),
        hub_peers in count(MAX_HUB_PEERS),
        changes in count(MAX_CHANGES),
        hub in any::<bool>(),
    ) {
        let scenarios = if hub { "live,hub" } else { "live,link-loss" };
        let a = vec![
            "--preset=tiny".to_owned(),
            format!("--scenarios={scenarios}"),
            format!("--users={users}"),
            format!("--online={online}"),
            format!("--hub-peers={hub_peers}"),
            format!("--changes={changes}"),
        ];
        let out = conformance(&a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(!stderr.contains("panicked"), "{a:?}: {stderr}");
        let u: u64 = users.parse().expect("an integer");
        let o: f64 = online.parse().expect("a float");
        let h: usize = hub_peers.parse().expect("an integer");
        let c: usize = changes.parse().expect("an integer");
        let valid = (1..=u64::from(MAX_USERS)).contains(&u)
            && (0.0..=1.0).contains(&o)
            && (1..=MAX_HUB_PEERS).contains(&h)
            && c <= MAX_CHANGES;
        if valid {
            prop_assert!(matches!(out.status.code(), Some(0 | 1)), "{a:?}: {:?} {stderr}", out.status);
            let stdout = String::from_utf8_lossy(&out.stdout);
            prop_assert!(stdout.contains("conformance: "), "{a:?}: {stdout}");
        } else {
            prop_assert_eq!(out.status.code(), Some(2), "{:?}: {}", a, stderr);
            prop_assert!(stderr.starts_with("error:"), "{a:?}: {stderr}");
        }
    }
}
