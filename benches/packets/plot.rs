//! The plot of the packet benchmark: stanzas, bytes or round trips (y) against cross-domain
//! edges (x), log-log, one line per scheme, written as a self-contained SVG.
//!
//! **Why no plotting crate.** `plotters` with only `svg_backend` and `line_series` is light
//! (three crates and `num-traits`) and draws log axes without fonts, but it writes each series
//! as an anonymous `<polyline>` among the legend's and grid's, labels decades `1000.0`, and
//! shows nothing for a one-point series; this 300-line writer gives one `<path
//! data-scheme='…'>` per scheme that tests and readers can find, markers at every point,
//! `10ⁿ` ticks, and byte-stable output, with no dependency.
//!
//! # What is drawn
//!
//! [`plot`] draws one scenario; [`small_multiples`] draws several side by side (`columns` per
//! row), each with its own axes, one legend for all. In each panel:
//!
//! - both axes are logarithmic, with a tick, a grid line and a label `10ⁿ` at every power of
//!   ten from the one at or below the smallest value to the one at or above the largest (at
//!   least one decade; a value within 0.05 decade of a power, like 965 or 1 000 298 edges,
//!   counts as on it), and a margin of 4% so that no point sits on the frame;
//! - each scheme is one `<path class='series' data-scheme='NAME'>` through its points in order
//!   of edges, with a marker at each point (its own shape: square, triangle, diamond, circle),
//!   so a scheme with a single point still shows; each scheme has its own dash pattern and is
//!   shifted sideways by a few units, so that lines with the same values (RFC 6121 and
//!   XEP-0033 at a link loss) stay visible side by side;
//! - a point whose run **left stale or missing presence** ([`Panel::stale`]) is not drawn at
//!   its count (0 stanzas would look cheaper than the floor): it is a cross on a `stale` row
//!   below the axis, set off by the broken-axis mark, and no line runs through it;
//! - **zero stanzas** (RFC 6121 after a bare link loss sends nothing and leaves stale presence)
//!   cannot sit on a log axis: such points go on a separate `0` row a decade below the
//!   lowest, set off by a broken-axis mark, and the lines run down to it;
//! - points with 0 edges are left out (no log position);
//! - the known schemes have fixed colours and the legend lists them first, in the order
//!   `rfc6121`, `xep0033` (dashed), `negentropy` (dotted), `presence-sync`, `floor` (dashed);
//!   other names follow
//!   in order of appearance, with colours from a spare palette.
//!
//! Text is escaped; numbers are written with one decimal, so the same rows give the same bytes.

// The packet bench includes this module with `mod plot;` and may call only part of it.
#![allow(dead_code)]

use std::fmt::Write as _;

/// One point: (scheme, edges, stanzas).
pub type Row<'a> = (&'a str, u64, u64);

/// One scenario of a [`small_multiples`] figure.
#[derive(Clone, Copy, Debug)]
pub struct Panel<'a> {
    /// The scenario's name, written above its panel.
    pub title: &'a str,
    /// What the y axis counts (`stanzas`, `bytes`, `round trips`).
    pub y_label: &'a str,
    /// Its points.
    pub rows: &'a [Row<'a>],
    /// The points (scheme, edges) whose run left stale or missing presence: drawn as a cross
    /// on a `stale` row below the axis instead of at their count, and left out of the lines.
    pub stale: &'a [(&'a str, u64)],
}

/// The schemes of the packet bench, in legend order, with their colours, dash patterns and
/// marker shapes: lines that coincide (RFC 6121 and XEP-0033 at a link loss, presence-sync and
/// the floor where both send 2 stanzas) stay distinguishable by dash and marker, and each
/// scheme's line is shifted sideways by a few units ([`OFFSET`]).
const KNOWN: [(&str, &str, &str, Shape); 5] = [
    ("rfc6121", "#d62728", "", Shape::Square),
    ("xep0033", "#ff7f0e", "7 3", Shape::Triangle),
    ("negentropy", "#1f77b4", "2 3", Shape::Diamond),
    ("presence-sync", "#2ca02c", "", Shape::Circle),
    ("floor", "#000000", "6 4", Shape::Circle),
];

/// How far apart, in SVG units, the lines of neighbouring schemes are drawn sideways.
const OFFSET: f64 = 3.0;
/// How many times further apart than the lines the crosses of stale runs are drawn.
const STALE_SPREAD: f64 = 3.0;

/// A marker's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}
/// Colours for schemes not in [`KNOWN`].
const SPARE: [&str; 5] = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"];

// Geometry, in SVG user units.
const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 320.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 46.0;
const TITLE_H: f64 = 34.0;
const LEGEND_W: f64 = 150.0;

/// An SVG of one scenario: `title` above, the rows (stanzas) as one line per scheme.
pub fn plot(title: &str, rows: &[Row<'_>]) -> String {
    small_multiples(
        title,
        &[Panel {
            title: "",
            y_label: "stanzas",
            rows,
            stale: &[],
        }],
        1,
    )
}

/// An SVG of several scenarios as small multiples, `columns` panels per row (at least 1), one
/// legend for all, `title` above.
pub fn small_multiples(title: &str, panels: &[Panel<'_>], columns: usize) -> String {
    let columns = columns.clamp(1, panels.len().max(1));
    let grid_rows = panels.len().div_ceil(columns).max(1);
    let width = columns as f64 * PANEL_W + LEGEND_W;
    let height = TITLE_H + grid_rows as f64 * PANEL_H;
    let schemes = schemes(panels);

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0}' height='{height:.0}' \
         viewBox='0 0 {width:.0} {height:.0}' font-family='sans-serif' font-size='12'>"
    );
    let _ = writeln!(s, "<rect width='100%' height='100%' fill='white'/>");
    let _ = writeln!(
        s,
        "<text class='title' x='{:.1}' y='22' text-anchor='middle' font-size='16'>{}</text>",
        (width - LEGEND_W) / 2.0,
        escape(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        let x0 = (i % columns) as f64 * PANEL_W;
        let y0 = TITLE_H + (i / columns) as f64 * PANEL_H;
        draw_panel(&mut s, panel, &schemes, x0, y0);
    }
    draw_legend(
        &mut s,
        &schemes,
        columns as f64 * PANEL_W + 10.0,
        TITLE_H + TOP,
    );
    s.push_str("</svg>\n");
    s
}

/// A scheme's name, colour, dash pattern and marker.
struct Style<'a> {
    name: &'a str,
    colour: &'a str,
    dash: &'a str,
    shape: Shape,
}

/// Every scheme of the panels, known ones first in their order, then the others as they come.
fn schemes<'a>(panels: &[Panel<'a>]) -> Vec<Style<'a>> {
    let present = |name: &str| panels.iter().any(|p| p.rows.iter().any(|r| r.0 == name));
    let mut out: Vec<Style<'a>> = KNOWN
        .iter()
        .filter(|k| present(k.0))
        .map(|&(name, colour, dash, shape)| Style {
            name,
            colour,
            dash,
            shape,
        })
        .collect();
    let mut spare = SPARE.iter().cycle();
    for row in panels.iter().flat_map(|p| p.rows.iter()) {
        if !out.iter().any(|st| st.name == row.0) {
            out.push(Style {
                name: row.0,
                colour: spare.next().expect("cycle"),
                dash: "",
                shape: Shape::Circle,
            });
        }
    }
    out
}

/// A log axis, in decades (log10 of the value): the labelled powers of ten, the range shown
/// (a little wider than the data, so no point sits on the frame), and the position of the `0`
/// row if some value is 0.
struct Axis {
    /// First and last labelled power of ten.
    lo: i32,
    hi: i32,
    /// The range shown.
    start: f64,
    end: f64,
    /// Where the `0` row is, if any.
    zero: Option<f64>,
    /// Where the `stale` row is, if any (below the `0` row).
    stale: Option<f64>,
}

impl Axis {
    fn of(values: impl Iterator<Item = u64>, allow_zero: bool) -> Axis {
        Axis::with_stale(values, allow_zero, false)
    }

    /// [`Axis::of`], with a `stale` row below everything if `stale`.
    fn with_stale(values: impl Iterator<Item = u64>, allow_zero: bool, stale: bool) -> Axis {
        let (mut min, mut max, mut zero) = (f64::INFINITY, f64::NEG_INFINITY, false);
        for v in values {
            if v == 0 {
                zero |= allow_zero;
            } else {
                let l = (v as f64).log10();
                (min, max) = (min.min(l), max.max(l));
            }
        }
        if min > max {
            // Nothing positive: show 10⁰..10¹ (above the zero row, if any).
            (min, max) = (0.0, 1.0);
        }
        // Label the powers of ten around the data; a value within 5% of a decade of a power
        // (965, 1 000 298) counts as on it rather than opening another decade.
        let lo = (min + 0.05).floor() as i32;
        let mut hi = (max - 0.05).ceil() as i32;
        if hi <= lo {
            hi = lo + 1;
        }
        let (first, last) = (min.min(f64::from(lo)), max.max(f64::from(hi)));
        let zero_at = zero.then_some(first - 1.0);
        let stale_at = stale.then(|| zero_at.unwrap_or(first) - 1.0);
        let bottom = stale_at.or(zero_at).unwrap_or(first);
        let pad = 0.04 * (last - bottom);
        Axis {
            lo,
            hi,
            start: bottom - pad,
            end: last + pad,
            zero: zero_at,
            stale: stale_at,
        }
    }

    /// Where a position in decades sits between 0 (start) and 1 (end).
    fn at(&self, decades: f64) -> f64 {
        (decades - self.start) / (self.end - self.start)
    }

    /// Where `v` sits between 0 (start) and 1 (end).
    fn fraction(&self, v: u64) -> f64 {
        match (v, self.zero) {
            (0, Some(z)) => self.at(z),
            (0, None) => 0.0,
            _ => self.at((v as f64).log10()),
        }
    }
}

fn draw_panel(s: &mut String, panel: &Panel<'_>, schemes: &[Style<'_>], x0: f64, y0: f64) {
    let is_stale = |r: &Row<'_>| panel.stale.contains(&(r.0, r.1));
    let all: Vec<&Row<'_>> = panel.rows.iter().filter(|r| r.1 > 0).collect();
    let rows: Vec<&Row<'_>> = all.iter().copied().filter(|r| !is_stale(r)).collect();
    let stale: Vec<&Row<'_>> = all.iter().copied().filter(|r| is_stale(r)).collect();
    let xa = Axis::of(all.iter().map(|r| r.1), false);
    let ya = Axis::with_stale(rows.iter().map(|r| r.2), true, !stale.is_empty());
    let (left, top) = (x0 + LEFT, y0 + TOP);
    let (w, h) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let px = |v: u64| left + xa.fraction(v) * w;
    let py = |v: u64| top + h - ya.fraction(v) * h;

    let _ = writeln!(s, "<g class='panel'>");
    if !panel.title.is_empty() {
        let _ = writeln!(
            s,
            "<text class='panel-title' x='{:.1}' y='{:.1}' text-anchor='middle' font-size='13'>{}</text>",
            left + w / 2.0,
            y0 + TOP - 10.0,
            escape(panel.title)
        );
    }
    let _ = writeln!(
        s,
        "<rect x='{left:.1}' y='{top:.1}' width='{w:.1}' height='{h:.1}' fill='none' stroke='#444'/>"
    );
    // Decades: grid, tick, label.
    for e in xa.lo..=xa.hi {
        let x = left + xa.at(f64::from(e)) * w;
        let _ = writeln!(
            s,
            "<line class='grid' x1='{x:.1}' y1='{top:.1}' x2='{x:.1}' y2='{:.1}' stroke='#ddd'/>\
             <line class='tick' x1='{x:.1}' y1='{:.1}' x2='{x:.1}' y2='{:.1}' stroke='#444'/>\
             <text class='tick-label' x='{x:.1}' y='{:.1}' text-anchor='middle'>{}</text>",
            top + h,
            top + h,
            top + h + 5.0,
            top + h + 18.0,
            power_of_ten(e)
        );
    }
    let y_ticks = (ya.lo..=ya.hi).map(|e| (f64::from(e), power_of_ten(e)));
    let zero_tick = ya.zero.map(|z| (z, "0".to_owned()));
    let stale_tick = ya.stale.map(|z| (z, "stale".to_owned()));
    for (at, label) in stale_tick.into_iter().chain(zero_tick).chain(y_ticks) {
        let y = top + h - ya.at(at) * h;
        let _ = writeln!(
            s,
            "<line class='grid' x1='{left:.1}' y1='{y:.1}' x2='{:.1}' y2='{y:.1}' stroke='#ddd'/>\
             <line class='tick' x1='{:.1}' y1='{y:.1}' x2='{left:.1}' y2='{y:.1}' stroke='#444'/>\
             <text class='tick-label' x='{:.1}' y='{:.1}' text-anchor='end'>{label}</text>",
            left + w,
            left - 5.0,
            left - 8.0,
            y + 4.0,
        );
    }
    if let Some(z) = ya.stale.or(ya.zero) {
        // Broken-axis mark halfway between the lowest row and the lowest value or decade.
        let y = top + h - ya.at(z + 0.5) * h;
        let _ = writeln!(
            s,
            "<path class='axis-break' d='M{:.1} {:.1}l8 -4M{:.1} {:.1}l8 -4' stroke='#444'/>",
            left - 4.0,
            y + 1.0,
            left - 4.0,
            y + 5.0
        );
    }
    let _ = writeln!(
        s,
        "<text class='axis-label' x='{:.1}' y='{:.1}' text-anchor='middle'>cross-domain edges</text>\
         <text class='axis-label' transform='translate({:.1} {:.1}) rotate(-90)' text-anchor='middle'>{}</text>",
        left + w / 2.0,
        top + h + 36.0,
        x0 + 14.0,
        top + h / 2.0,
        escape(panel.y_label)
    );
    // One path per scheme present in this panel, then its markers, each scheme shifted
    // sideways by its own multiple of OFFSET so that equal lines stay visible.
    let present: Vec<&Style<'_>> = schemes
        .iter()
        .filter(|st| all.iter().any(|r| r.0 == st.name))
        .collect();
    let mid = (present.len() as f64 - 1.0) / 2.0;
    for (k, st) in present.iter().enumerate() {
        let dx = (k as f64 - mid) * OFFSET;
        let px = |v: u64| px(v) + dx;
        // Stale points: a cross on the stale row, no line through them.
        // Crosses are wider than markers: spread them further apart than the lines.
        for r in stale.iter().filter(|r| r.0 == st.name) {
            let x = px(r.1) + dx * (STALE_SPREAD - 1.0);
            let y = top + h - ya.at(ya.stale.unwrap_or(0.0)) * h;
            let _ = writeln!(
                s,
                "<path class='stale' data-scheme='{}' data-value='{}' d='M{:.1} {:.1}l8 8M{:.1} {:.1}l-8 8' stroke='{}' stroke-width='2'/>",
                escape(st.name),
                r.2,
                x - 4.0,
                y - 4.0,
                x + 4.0,
                y - 4.0,
                st.colour
            );
        }
        let mut points: Vec<(u64, u64)> = rows
            .iter()
            .filter(|r| r.0 == st.name)
            .map(|r| (r.1, r.2))
            .collect();
        if points.is_empty() {
            continue;
        }
        points.sort_unstable();
        let points: Vec<(u64, u64)> = points
            .into_iter()
            .filter(|&(x, _)| !panel.stale.contains(&(st.name, x)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let mut d = String::new();
        for (i, &(x, y)) in points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if i == 0 { "M" } else { "L" },
                px(x),
                py(y)
            );
        }
        let dash = if st.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray='{}'", st.dash)
        };
        let _ = writeln!(
            s,
            "<path class='series' data-scheme='{}' d='{d}' fill='none' stroke='{}' stroke-width='2'{dash}/>",
            escape(st.name),
            st.colour
        );
        for &(x, y) in &points {
            marker(s, st, px(x), py(y), "marker");
        }
    }
    let _ = writeln!(s, "</g>");
}

/// A marker of `st`'s shape centred on (x, y), of `class`.
fn marker(s: &mut String, st: &Style<'_>, x: f64, y: f64, class: &str) {
    let name = escape(st.name);
    let c = st.colour;
    let _ = match st.shape {
        Shape::Circle => writeln!(
            s,
            "<circle class='{class}' data-scheme='{name}' cx='{x:.1}' cy='{y:.1}' r='3' fill='{c}'/>"
        ),
        Shape::Square => writeln!(
            s,
            "<rect class='{class}' data-scheme='{name}' x='{:.1}' y='{:.1}' width='7' height='7' fill='none' stroke='{c}' stroke-width='1.5'/>",
            x - 3.5,
            y - 3.5
        ),
        Shape::Triangle => writeln!(
            s,
            "<path class='{class}' data-scheme='{name}' d='M{x:.1} {:.1}l4 7h-8z' fill='{c}'/>",
            y - 4.5
        ),
        Shape::Diamond => writeln!(
            s,
            "<path class='{class}' data-scheme='{name}' d='M{x:.1} {:.1}l4 4l-4 4l-4 -4z' fill='{c}'/>",
            y - 4.0
        ),
    };
}

fn draw_legend(s: &mut String, schemes: &[Style<'_>], x: f64, y: f64) {
    let _ = writeln!(s, "<g class='legend'>");
    for (i, st) in schemes.iter().enumerate() {
        let ly = y + 20.0 * i as f64;
        let dash = if st.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray='{}'", st.dash)
        };
        let _ = writeln!(
            s,
            "<line x1='{x:.1}' y1='{ly:.1}' x2='{:.1}' y2='{ly:.1}' stroke='{}' stroke-width='2'{dash}/>\
             <text x='{:.1}' y='{:.1}'>{}</text>",
            x + 24.0,
            st.colour,
            x + 30.0,
            ly + 4.0,
            escape(st.name)
        );
        marker(s, st, x + 12.0, ly, "legend-marker");
    }
    // What a cross means, if a panel has one.
    let ly = y + 20.0 * schemes.len() as f64 + 6.0;
    let _ = writeln!(
        s,
        "<path d='M{:.1} {:.1}l8 8M{:.1} {:.1}l-8 8' stroke='#444' stroke-width='2'/>\
         <text x='{:.1}' y='{:.1}'>left stale or</text><text x='{:.1}' y='{:.1}'>missing presence</text>",
        x + 8.0,
        ly - 4.0,
        x + 16.0,
        ly - 4.0,
        x + 30.0,
        ly + 4.0,
        x + 30.0,
        ly + 18.0
    );
    let _ = writeln!(s, "</g>");
}

/// `10ⁿ` with a superscript exponent.
fn power_of_ten(e: i32) -> String {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut out = String::from("10");
    if e < 0 {
        out.push('⁻');
    }
    for c in e.unsigned_abs().to_string().chars() {
        out.push(SUP[c as usize - '0' as usize]);
    }
    out
}

/// Text and attribute values: XML-escaped (the output uses `'` for attributes).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
