//! The computed parts of the packet benchmark (issue 6): the information-theoretic floor and
//! the SVG plot, tested here because a `harness = false` bench target is never built with
//! `cfg(test)` (as `tests/negentropy_anchor.rs` does for the negentropy anchor).
#[path = "../benches/packets/floor.rs"]
mod floor;
#[path = "../benches/packets/plot.rs"]
mod plot;

use minidom::Element;

use floor::{CHECK_BITS, Floor, difference_bits, floor, log2_factorial};
use plot::{Panel, Row, plot, small_multiples};

// ---- floor ----

#[test]
fn one_difference_costs_its_identifier() {
    assert_eq!(difference_bits(1, 64), 64);
    assert_eq!(difference_bits(1, 256), 256);
    assert_eq!(difference_bits(0, 64), 0);
}

#[test]
fn log2_factorial_is_exact_for_small_d() {
    assert_eq!(log2_factorial(0), 0.0);
    assert_eq!(log2_factorial(1), 0.0);
    assert_eq!(log2_factorial(2), 1.0);
    // 2·3·4 = 2^3 · 3
    assert!((log2_factorial(4) - (3.0 + 3f64.log2())).abs() < 1e-12);
    // Against the integer d! (exact in u128 up to 34!).
    let mut factorial: u128 = 1;
    for d in 1..=34u64 {
        factorial *= u128::from(d);
        let exact = (factorial as f64).log2();
        assert!(
            (log2_factorial(d) - exact).abs() < 1e-9,
            "d = {d}: {} vs {exact}",
            log2_factorial(d)
        );
    }
}

#[test]
fn difference_bits_match_the_formula() {
    // ceil(d·b − log2(d!)) by hand: d = 2 → 128 − 1; d = 3 → 192 − log2 6 = 189.415 → 190.
    assert_eq!(difference_bits(2, 64), 127);
    assert_eq!(difference_bits(3, 64), 190);
    // The brief's figure: 100 differences among 64-bit ids ≈ 734 B (5 875.24 bits).
    assert_eq!(difference_bits(100, 64), 5876);
    assert_eq!(difference_bits(100, 64).div_ceil(8), 735);
    // Continuous across the switch from the exact integer (d ≤ 34) to the sum.
    for d in 30..=40u64 {
        let by_sum = (d as f64 * 64.0 - log2_factorial(d)).ceil() as u64;
        assert_eq!(difference_bits(d, 64), by_sum, "d = {d}");
    }
}

#[test]
fn floor_is_monotonic_in_d() {
    let mut last = 0;
    for d in (0..2000u64).chain([10_000, 100_000, 1_000_000]) {
        let bits = difference_bits(d, 64);
        assert!(d == 0 || bits > last, "d = {d}: {bits} ≤ {last}");
        last = bits;
        let f = floor(d, 64, 0);
        assert!(f.bytes >= CHECK_BITS / 8);
        assert_eq!((f.stanzas, f.round_trips), (1, 1));
    }
    // Per difference, the cost falls as d grows (the log2(d!) saving) but stays positive.
    let per = |d: u64| difference_bits(d, 64) as f64 / d as f64;
    assert!(per(1_000_000) < per(100) && per(100) < per(1));
    assert!(per(1_000_000) > 64.0 - 20.0 - 1.5);
}

#[test]
fn floor_messages() {
    // Unchanged: one message with the 128-bit check.
    assert_eq!(
        floor(0, 64, 0),
        Floor {
            bytes: 16,
            stanzas: 1,
            round_trips: 1
        }
    );
    // One difference: the check and the 64-bit id, plus the payload the caller measured.
    assert_eq!(floor(1, 64, 0).bytes, 16 + 8);
    assert_eq!(floor(1, 64, 100).bytes, 16 + 8 + 100);
    // Bits round up to whole bytes once, over the check and the ids together.
    assert_eq!(floor(3, 64, 0).bytes, (128u64 + 190).div_ceil(8));
    assert_eq!(floor(100, 64, 0).bytes, (128u64 + 5876).div_ceil(8));
    assert_eq!(floor(1, 64, 0).framed(150).bytes, 24 + 150);
}

// ---- plot ----

fn parse(svg: &str) -> Element {
    svg.parse::<Element>()
        .unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
}

fn descendants(e: &Element) -> Vec<&Element> {
    let mut out = vec![e];
    for c in e.children() {
        out.extend(descendants(c));
    }
    out
}

/// The `data-scheme` of each series path, in document order.
fn series(svg: &Element) -> Vec<String> {
    descendants(svg)
        .into_iter()
        .filter(|e| e.name() == "path" && e.attr("class") == Some("series"))
        .map(|e| e.attr("data-scheme").expect("data-scheme").to_owned())
        .collect()
}

fn texts(svg: &Element) -> Vec<String> {
    descendants(svg)
        .into_iter()
        .filter(|e| e.name() == "text")
        .map(|e| e.text())
        .collect()
}

const SCHEMES: [&str; 5] = ["rfc6121", "xep0033", "negentropy", "presence-sync", "floor"];

fn rows() -> Vec<Row<'static>> {
    let mut rows = Vec::new();
    for (i, edges) in [1_000u64, 10_000, 100_000, 1_000_000]
        .into_iter()
        .enumerate()
    {
        let k = 10u64.pow(i as u32);
        rows.push(("floor", edges, 1));
        rows.push(("presence-sync", edges, 15 * k / 2 + 2));
        rows.push(("negentropy", edges, 6 + i as u64));
        rows.push(("xep0033", edges, 40 * k));
        rows.push(("rfc6121", edges, 340 * k));
    }
    rows
}

#[test]
fn plot_is_svg_with_one_path_per_scheme() {
    let svg = plot("cold restart & login storm", &rows());
    let root = parse(&svg);
    assert_eq!(root.name(), "svg");
    assert_eq!(root.ns(), "http://www.w3.org/2000/svg");
    // One path per scheme, in legend order; the floor dashed.
    assert_eq!(series(&root), SCHEMES);
    let floor_path = descendants(&root)
        .into_iter()
        .find(|e| e.attr("data-scheme") == Some("floor") && e.name() == "path")
        .unwrap();
    assert!(floor_path.attr("stroke-dasharray").is_some());
    // Four points per scheme: one move and three line segments, four markers.
    for e in descendants(&root)
        .into_iter()
        .filter(|e| e.attr("class") == Some("series"))
    {
        let d = e.attr("d").unwrap();
        assert_eq!(d.matches('M').count() + d.matches('L').count(), 4, "{d}");
    }
    let markers = descendants(&root)
        .into_iter()
        .filter(|e| e.attr("class") == Some("marker"))
        .count();
    assert_eq!(markers, 20);
    // Title (escaped in the source, plain after parsing), legend, axis labels.
    let t = texts(&root);
    assert!(t.contains(&"cold restart & login storm".to_owned()));
    assert!(svg.contains("cold restart &amp; login storm"));
    for s in SCHEMES {
        assert!(t.contains(&s.to_owned()), "legend lacks {s}");
    }
    assert!(t.contains(&"stanzas".to_owned()) && t.contains(&"cross-domain edges".to_owned()));
    // Same rows, same bytes.
    assert_eq!(svg, plot("cold restart & login storm", &rows()));
}

#[test]
fn plot_axes_are_log_with_decade_ticks() {
    let svg = plot("log", &rows());
    let root = parse(&svg);
    let labels: Vec<String> = descendants(&root)
        .into_iter()
        .filter(|e| e.attr("class") == Some("tick-label"))
        .map(|e| e.text())
        .collect();
    // x: 10³..10⁶; y: 10⁰ (the floor's 1) .. 10⁶ (rfc6121's 3.4·10⁵).
    let x = ["10³", "10⁴", "10⁵", "10⁶"];
    let y = ["10⁰", "10¹", "10²", "10³", "10⁴", "10⁵", "10⁶"];
    assert_eq!(labels, [&x[..], &y[..]].concat());

    // Equal ratios are equal distances: the rfc6121 line (×10 per decade) is straight with
    // slope -1 in SVG units scaled by the panels' aspect, so its segments are equal.
    let path = descendants(&root)
        .into_iter()
        .find(|e| e.attr("data-scheme") == Some("rfc6121") && e.name() == "path")
        .unwrap();
    let pts: Vec<(f64, f64)> = path
        .attr("d")
        .unwrap()
        .split(['M', 'L'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.split(' ').map(|v| v.parse::<f64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    assert_eq!(pts.len(), 4);
    let steps: Vec<(f64, f64)> = pts
        .windows(2)
        .map(|w| (w[1].0 - w[0].0, w[1].1 - w[0].1))
        .collect();
    for s in &steps {
        assert!((s.0 - steps[0].0).abs() < 0.2 && (s.1 - steps[0].1).abs() < 0.2);
        assert!(s.0 > 0.0 && s.1 < 0.0, "up and to the right: {s:?}");
    }
}

#[test]
fn plot_handles_a_single_point_and_zero() {
    // One scheme with a single point, one with zero stanzas (RFC 6121 after a link loss).
    let rows: [Row<'_>; 4] = [
        ("presence-sync", 10_000, 20),
        ("rfc6121", 1_000, 0),
        ("rfc6121", 10_000, 0),
        ("negentropy", 10_000, 7),
    ];
    let svg = plot("link loss", &rows);
    let root = parse(&svg);
    assert_eq!(series(&root), ["rfc6121", "negentropy", "presence-sync"]);
    let single = descendants(&root)
        .into_iter()
        .find(|e| e.attr("data-scheme") == Some("presence-sync") && e.name() == "path")
        .unwrap();
    assert!(!single.attr("d").unwrap().contains('L'));
    assert!(
        descendants(&root)
            .into_iter()
            .any(|e| e.name() == "circle" && e.attr("data-scheme") == Some("presence-sync"))
    );
    let labels: Vec<String> = descendants(&root)
        .into_iter()
        .filter(|e| e.attr("class") == Some("tick-label"))
        .map(|e| e.text())
        .collect();
    assert!(labels.contains(&"0".to_owned()), "{labels:?}");
    assert!(svg.contains("axis-break"));
    // Every coordinate is a finite number.
    assert!(!svg.contains("NaN") && !svg.contains("inf"));

    // A lone point at an exact power of ten still gets a decade of axis.
    let svg = plot("one", &[("floor", 1_000, 1)]);
    let root = parse(&svg);
    assert_eq!(series(&root), ["floor"]);
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn small_multiples_share_one_legend() {
    let all = rows();
    let unknown: Vec<Row<'_>> = vec![("riblt", 1_000, 3), ("riblt", 1_000_000, 3)];
    let panels = [
        Panel {
            title: "cold restart",
            y_label: "stanzas",
            rows: &all,
            stale: &[],
        },
        Panel {
            title: "link loss, d = 100",
            y_label: "bytes",
            rows: &all[..10],
            stale: &[],
        },
        Panel {
            title: "other <scheme>",
            y_label: "round trips",
            rows: &unknown,
            stale: &[],
        },
    ];
    let svg = small_multiples("packets", &panels, 2);
    let root = parse(&svg);
    let paths = series(&root);
    // 5 + 5 (the first two sizes have every scheme) + 1.
    assert_eq!(paths.len(), 11);
    assert_eq!(paths[10], "riblt");
    let t = texts(&root);
    for title in ["cold restart", "link loss, d = 100", "other <scheme>"] {
        assert!(t.contains(&title.to_owned()), "{title}");
    }
    // One legend entry per scheme, known first.
    let legend = descendants(&root)
        .into_iter()
        .find(|e| e.attr("class") == Some("legend"))
        .unwrap();
    let entries: Vec<String> = legend
        .children()
        .filter(|e| e.name() == "text")
        .map(|e| e.text())
        .collect();
    assert_eq!(
        entries,
        [
            &SCHEMES[..],
            &["riblt", "left stale or", "missing presence"][..]
        ]
        .concat()
    );
    for label in ["stanzas", "bytes", "round trips"] {
        assert!(t.contains(&label.to_owned()), "no y label {label}");
    }
    // Two columns, two rows of panels.
    assert_eq!(root.attr("width"), Some("1030"));
    assert_eq!(root.attr("height"), Some("674"));
}

/// The x coordinates of the points of `scheme`'s series path.
fn xs(root: &Element, scheme: &str) -> Vec<f64> {
    let path = descendants(root)
        .into_iter()
        .find(|e| e.attr("data-scheme") == Some(scheme) && e.attr("class") == Some("series"))
        .unwrap_or_else(|| panic!("no series {scheme}"));
    path.attr("d")
        .unwrap()
        .split(['M', 'L'])
        .filter(|p| !p.is_empty())
        .map(|p| p.split(' ').next().unwrap().parse::<f64>().unwrap())
        .collect()
}

#[test]
fn stale_runs_are_crosses_not_zeros_and_equal_lines_stay_apart() {
    // A link loss: RFC 6121 and XEP-0033 send nothing and leave stale presence; presence-sync
    // and the floor both send 2 stanzas.
    let rows: Vec<Row<'_>> = [1_000u64, 10_000]
        .into_iter()
        .flat_map(|e| {
            [
                ("rfc6121", e, 0),
                ("xep0033", e, 0),
                ("presence-sync", e, 2),
                ("floor", e, 2),
            ]
        })
        .collect();
    let stale = [
        ("rfc6121", 1_000),
        ("rfc6121", 10_000),
        ("xep0033", 1_000),
        ("xep0033", 10_000),
    ];
    let panel = Panel {
        title: "link-loss-0: stanzas",
        y_label: "stanzas",
        rows: &rows,
        stale: &stale,
    };
    let svg = small_multiples("t", &[panel], 1);
    let root = parse(&svg);
    // The stale schemes have no line and no point at 0: a cross each, on the stale row.
    assert_eq!(series(&root), ["presence-sync", "floor"]);
    let crosses: Vec<&Element> = descendants(&root)
        .into_iter()
        .filter(|e| e.attr("class") == Some("stale"))
        .collect();
    assert_eq!(crosses.len(), 4);
    let labels: Vec<String> = descendants(&root)
        .into_iter()
        .filter(|e| e.attr("class") == Some("tick-label"))
        .map(|e| e.text())
        .collect();
    assert!(labels.contains(&"stale".to_owned()), "{labels:?}");
    assert!(!labels.contains(&"0".to_owned()), "{labels:?}");
    // Equal values, distinct lines: presence-sync and the floor are drawn apart, dashed
    // differently, with different markers.
    let (p, f) = (xs(&root, "presence-sync"), xs(&root, "floor"));
    assert!(
        p.iter().zip(&f).all(|(a, b)| (a - b).abs() >= 2.0),
        "{p:?} {f:?}"
    );
    let markers = |scheme: &str| -> Vec<String> {
        descendants(&root)
            .into_iter()
            .filter(|e| e.attr("class") == Some("marker") && e.attr("data-scheme") == Some(scheme))
            .map(|e| e.name().to_owned())
            .collect()
    };
    assert_eq!(markers("presence-sync").len(), 2);
    // RFC 6121 and XEP-0033 lines (when converged) differ by marker shape and dash.
    let both: Vec<Row<'_>> = vec![("rfc6121", 1_000, 5), ("xep0033", 1_000, 5)];
    let svg = plot("equal", &both);
    let root = parse(&svg);
    let shape = |scheme: &str| {
        descendants(&root)
            .into_iter()
            .find(|e| e.attr("class") == Some("marker") && e.attr("data-scheme") == Some(scheme))
            .map(|e| (e.name().to_owned(), e.attr("d").is_some()))
            .unwrap()
    };
    assert_ne!(shape("rfc6121"), shape("xep0033"));
    assert_ne!(xs(&root, "rfc6121"), xs(&root, "xep0033"));
}
