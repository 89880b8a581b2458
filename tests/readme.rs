//! The figures in README.md that a command prints or that the code defines cannot go stale:
//! the sample report is the output of the default run (`tools/readme-sample.sh` writes it),
//! and the counts in the prose are those of the XEP, the suite and its audit.

use presence_sync::conformance::report::{requirements, xep_version};
use presence_sync::conformance::subject::Reference;
use presence_sync::conformance::{self, Options, audit, mutants, scenarios};

const README: &str = include_str!("../README.md");
const XEP: &str = include_str!("../xep/presence-sync.xml");

/// The text between `begin` and `end` in the README.
fn between<'a>(begin: &str, end: &str) -> &'a str {
    let i = README
        .find(begin)
        .unwrap_or_else(|| panic!("no {begin:?} in README.md"))
        + begin.len();
    let j = README[i..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} after {begin:?}"));
    &README[i..i + j]
}

/// The number just before `after` in the README (`"92 requirements"` → 92 for `" requirements"`),
/// at its first occurrence after `anchor`.
fn number_before(anchor: &str, after: &str) -> u64 {
    let start = README
        .find(anchor)
        .unwrap_or_else(|| panic!("no {anchor:?} in README.md"));
    let rest = &README[start..];
    let at = rest
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} after {anchor:?}"));
    let digits: String = rest[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {after:?}"))
}

#[test]
fn the_sample_report_is_what_the_default_run_prints() {
    let report = conformance::run_suite(&Reference::default(), &Options::default(), &mut |_| {})
        .expect("the default run");
    let sample = between(
        "<!-- sample: conformance (tools/readme-sample.sh) -->\n```text\n",
        "\n```\n<!-- /sample -->",
    );
    // What the command prints: the report and the newline of `println!`.
    let printed = report.text(false);
    assert!(
        sample == printed.trim_end_matches('\n'),
        "README.md's sample report is stale: run tools/readme-sample.sh\n--- README\n{sample}\n--- now\n{printed}"
    );
    // And the prose's count of edges is the default workload's.
    assert_eq!(
        number_before("preset `small`: 100 users per domain, ", " cross-domain"),
        report.workload.edges
    );
}

#[test]
fn the_counts_in_the_prose_are_current() {
    assert_eq!(
        number_before("complete ProtoXEP (", " requirements"),
        requirements().len() as u64
    );
    assert_eq!(
        number_before("complete ProtoXEP (", " examples"),
        XEP.matches("<example").count() as u64
    );
    assert!(README.contains(&format!("complete ProtoXEP ({}):", xep_version())));
    assert_eq!(
        number_before(
            "| conformance suite (`conformance/`) | done: ",
            " scenarios"
        ),
        scenarios::all().len() as u64
    );
    assert_eq!(
        number_before(
            "| conformance suite (`conformance/`) | done: ",
            " deliberately broken"
        ),
        mutants::all().len() as u64
    );
    assert_eq!(
        number_before("**Proof that it can fail.**", " deliberately broken"),
        mutants::all().len() as u64
    );
    assert_eq!(
        number_before("- **Audit.**", " checks,"),
        audit::CHECKS.len() as u64
    );
}

/// The packet table of the README's "Packet comparison" is the stored bench run
/// (`benches/results/packets.csv`) at its largest size. `PRESENCE_SYNC_BLESS=1` writes it
/// into README.md instead of comparing, after the stored run was replaced.
#[test]
fn the_packet_table_is_the_stored_bench_run() {
    const BEGIN: &str = "<!-- packets: benches/results/packets.csv (tests/readme.rs) -->\n";
    const END: &str = "<!-- /packets -->";
    let csv = stored("packets.csv");
    let table = packet_table(&csv);
    bless_or_compare(BEGIN, END, &table);
}

/// The hub tables and the targets of the stored bench run (`benches/results/packets.txt`) are
/// the README's block after the packet table. `PRESENCE_SYNC_BLESS=1` writes it.
#[test]
fn the_bench_block_is_the_stored_bench_run() {
    const BEGIN: &str = "<!-- bench: benches/results/packets.txt (tests/readme.rs) -->\n";
    const END: &str = "<!-- /bench -->";
    let txt = stored("packets.txt");
    let hub = txt
        .find("== hub:")
        .map(|i| {
            let rest = &txt[i..];
            rest[..rest.find("\nwrote ").unwrap_or(rest.len())].trim_end()
        })
        .expect("the hub tables in packets.txt");
    let targets = txt
        .find("Targets (measured figures):")
        .map(|i| txt[i..].trim_end())
        .expect("the targets in packets.txt");
    let block = format!("```text\n{hub}\n\n{targets}\n```\n");
    bless_or_compare(BEGIN, END, &block);
}

/// The file `name` of the stored bench run (`benches/results/`).
fn stored(name: &str) -> String {
    let path = format!("{}/benches/results/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Writes `text` between `begin` and `end` in README.md with `PRESENCE_SYNC_BLESS` set, or
/// asserts that it is there.
fn bless_or_compare(begin: &str, end: &str, text: &str) {
    if std::env::var_os("PRESENCE_SYNC_BLESS").is_some() {
        // Tests run in parallel: one rewrite of the file at a time.
        static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let i = readme.find(begin).expect("the begin marker") + begin.len();
        let j = i + readme[i..].find(end).expect("the end marker");
        let new = format!("{}{text}{}", &readme[..i], &readme[j..]);
        std::fs::write(path, new).expect("writing README.md");
        return;
    }
    assert_eq!(
        between(begin, end),
        text,
        "README.md differs from the stored bench run in benches/results/; after replacing it, \
         write the README with PRESENCE_SYNC_BLESS=1 cargo test --release --test readme"
    );
}

/// `n` with its thousands grouped by spaces (`1 000 484`).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Bytes as the README writes them: `891 B`, `1 386 B`, `65 KB`, `12.5 MB` (decimal units).
fn bytes(b: u64) -> String {
    if b < 10_000 {
        format!("{} B", grouped(b))
    } else if b < 1_000_000 {
        format!("{} KB", (b + 500) / 1000)
    } else {
        format!("{:.1} MB", b as f64 / 1e6)
    }
}

/// The Markdown table of the largest size of a packets CSV (`scenario,edges,differences,
/// scheme,stanzas,bytes,round_trips,converged`, then the simulated times, which the table
/// leaves to the bench block), one row per scenario in the bench's order.
fn packet_table(csv: &str) -> String {
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .filter(|r: &Vec<&str>| r.len() >= 8)
        .collect();
    let edges = rows
        .iter()
        .filter_map(|r| r[1].parse::<u64>().ok())
        .max()
        .expect("rows");
    let label = |scenario: &str| -> String {
        match scenario {
            "cold-restart" => "cold restart + login storm".into(),
            "graceful-restart" => "graceful restart".into(),
            "both-restart" => "both restart".into(),
            "link-loss-0" => "link loss, unchanged".into(),
            "link-loss-1" => "link loss, 1 presence change".into(),
            "mismatch" => "100 subscription mismatches".into(),
            s if s.starts_with("link-loss-mixed-") => format!(
                "link loss, {} changes of every kind",
                &s["link-loss-mixed-".len()..]
            ),
            s if s.starts_with("link-loss-") => {
                format!("link loss, {} presence changes", &s["link-loss-".len()..])
            }
            s => s.into(),
        }
    };
    let mut scenarios: Vec<&str> = Vec::new();
    for r in &rows {
        if !scenarios.contains(&r[0]) {
            scenarios.push(r[0]);
        }
    }
    let schemes = ["rfc6121", "xep0033", "negentropy", "presence-sync", "floor"];
    let mut out = format!(
        "At {} cross-domain edges; stanzas / bytes / round trips; \"differing\" is the floor's \
         d:\n\n| scenario | differing | RFC 6121 (Prosody-like) | XEP-0033 (ejabberd-like) | \
         negentropy | this extension | floor |\n|---|---|---|---|---|---|---|\n",
        grouped(edges)
    );
    for s in scenarios {
        let of: Vec<&Vec<&str>> = rows
            .iter()
            .filter(|r| r[0] == s && r[1].parse::<u64>().ok() == Some(edges))
            .collect();
        let Some(first) = of.first() else { continue };
        let mut line = format!(
            "| {} | {} |",
            label(s),
            grouped(first[2].parse().expect("differences"))
        );
        for scheme in schemes {
            let cell = of.iter().find(|r| r[3] == scheme).map_or_else(
                || "-".to_owned(),
                |r| {
                    let n = |i: usize| r[i].parse::<u64>().expect("a count");
                    let stale = r[7] == "false";
                    match (n(4), stale) {
                        (0, true) if s == "mismatch" => "0 (not repaired)".to_owned(),
                        (0, true) => "0 (stale)".to_owned(),
                        (st, stale) => format!(
                            "{} / {} / {}{}",
                            grouped(st),
                            bytes(n(5)),
                            n(6),
                            if stale { " (stale)" } else { "" }
                        ),
                    }
                },
            );
            line.push_str(&format!(" {cell} |"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
