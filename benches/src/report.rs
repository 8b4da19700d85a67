//! The report: the table (stdout and markdown), `report.json` and the `report.svg` chart.

use crate::cases::{Better, Case, Scale};
use std::fmt::Write as _;

/// One side of one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Figure {
    /// The median of the repetitions.
    Value(f64),
    /// Not measured: a floor has no CPython side; a case whose crate has not landed has no
    /// multiproc side yet.
    Absent,
    /// python3 is not available.
    Unavailable,
    /// The measurement failed (the message says how).
    Failed(String),
}

impl Figure {
    /// The number, if measured.
    pub(crate) fn value(&self) -> Option<f64> {
        match self {
            Figure::Value(v) => Some(*v),
            _ => None,
        }
    }
}

/// One row of the report.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) case: &'static Case,
    pub(crate) multiproc: Figure,
    pub(crate) python: Figure,
    /// The floor's median (or the ideal), in the case's unit.
    pub(crate) floor: Option<f64>,
    /// The Rust peers measured for this case (name, median), in the case's unit.
    pub(crate) peers: Vec<(&'static str, Figure)>,
}

impl Row {
    fn ratio(&self, other: Option<f64>) -> Option<f64> {
        Some(self.multiproc.value()? / other?)
    }

    /// multiproc ÷ CPython.
    pub(crate) fn vs_python(&self) -> Option<f64> {
        self.ratio(self.python.value())
    }

    /// multiproc ÷ floor.
    pub(crate) fn vs_floor(&self) -> Option<f64> {
        self.ratio(self.floor)
    }

    /// The best measured peer (name, figure) by the case's direction.
    pub(crate) fn best_peer(&self) -> Option<(&'static str, f64)> {
        let better = |a: f64, b: f64| if self.case.better == Better::Lower { a < b } else { a > b };
        self.peers.iter().filter_map(|(n, f)| Some((*n, f.value()?))).fold(None, |best, (n, v)| {
            match best {
                Some((_, b)) if !better(v, b) => best,
                _ => Some((n, v)),
            }
        })
    }

    /// multiproc ÷ the best peer.
    pub(crate) fn vs_best_peer(&self) -> Option<f64> {
        self.ratio(self.best_peer().map(|p| p.1))
    }

    /// The peers cell: `name figure (multiproc÷peer×)`, joined by ` · `; `—` when none.
    fn peers_cell(&self) -> String {
        if self.peers.is_empty() {
            return "—".into();
        }
        self.peers
            .iter()
            .map(|(n, f)| match f {
                Figure::Value(v) => {
                    format!("{n} {} ({})", fmt_num(*v), fmt_ratio(self.ratio(Some(*v))))
                }
                Figure::Failed(_) => format!("{n} FAILED"),
                _ => format!("{n} —"),
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// A ratio turned into "times better" (above 1: multiproc is better).
    fn advantage(&self, ratio: Option<f64>) -> Option<f64> {
        let r = ratio?;
        Some(if self.case.better == Better::Lower { 1.0 / r } else { r })
    }
}

/// Where and when the run happened.
#[derive(Debug)]
pub(crate) struct Machine {
    date: String,
    arch: String,
    cpu: String,
    cpus: usize,
    kernel: String,
    python: Option<String>,
    how: String,
}

impl Machine {
    /// Looks at this machine now.
    pub(crate) fn detect(python: Option<String>, scale: Scale, reps: usize) -> Machine {
        let uname = |flag: &str| {
            std::process::Command::new("uname")
                .arg(flag)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into())
        };
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let how = match scale {
            Scale::Full => format!("`cargo xtask bench`, medians of {reps}"),
            Scale::Quick => format!("`cargo xtask bench --quick`, medians of {reps}"),
            Scale::Smoke => format!("smoke run, {reps} × a few iterations: not a measurement"),
        };
        Machine {
            date: utc_date(secs),
            arch: uname("-m"),
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: uname("-r"),
            python,
            how,
        }
    }

    fn line(&self) -> String {
        format!(
            "{} · {} · {} · {} CPUs (nproc) · Linux {} · CPython {}",
            self.date,
            self.arch,
            self.cpu,
            self.cpus,
            self.kernel,
            self.python.as_deref().unwrap_or("not measured")
        )
    }
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds (civil-from-days, H. Hinnant).
pub(crate) fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// A number with about three significant digits; k/M/G above 10,000.
pub(crate) fn fmt_num(v: f64) -> String {
    // From the top: at or above `min`, `v / div` with `decimals` and `suffix`.
    const STEPS: [(f64, f64, usize, &str); 9] = [
        (1e10, 1e9, 1, "G"),
        (1e9, 1e9, 2, "G"),
        (1e7, 1e6, 1, "M"),
        (1e6, 1e6, 2, "M"),
        (1e5, 1e3, 0, "k"),
        (1e4, 1e3, 1, "k"),
        (100.0, 1.0, 0, ""),
        (10.0, 1.0, 1, ""),
        (1.0, 1.0, 2, ""),
    ];
    let a = v.abs();
    if !v.is_finite() {
        return format!("{v}");
    }
    if let Some(&(_, div, decimals, suffix)) = STEPS.iter().find(|s| a >= s.0) {
        format!("{:.*}{suffix}", decimals, v / div)
    } else if a >= 1e-6 {
        let decimals = 2 - a.log10().floor() as i32;
        format!("{v:.*}", decimals as usize)
    } else {
        format!("{v:.2e}")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".into(), |r| format!("{}×", fmt_num(r)))
}

fn unit_cell(c: &Case) -> String {
    format!("{} {}", c.unit, if c.better == Better::Lower { "↓" } else { "↑" })
}

fn cells(r: &Row) -> [String; 9] {
    let fig = |f: &Figure, absent: &str| match f {
        Figure::Value(v) => fmt_num(*v),
        Figure::Absent => absent.into(),
        Figure::Unavailable => "n/a".into(),
        Figure::Failed(_) => "FAILED".into(),
    };
    [
        r.case.name.into(),
        unit_cell(r.case),
        fig(&r.multiproc, "not yet"),
        fig(&r.python, "—"),
        r.floor.map_or_else(|| "—".into(), fmt_num),
        fmt_ratio(r.vs_python()),
        fmt_ratio(r.vs_floor()),
        r.peers_cell(),
        fmt_ratio(r.vs_best_peer()),
    ]
}

const HEADERS: [&str; 9] = [
    "case",
    "unit",
    "multiproc",
    "CPython",
    "floor",
    "multiproc÷CPython",
    "multiproc÷floor",
    "Rust peers (multiproc÷peer)",
    "multiproc÷best peer",
];

/// The plain-text table for stdout.
pub(crate) fn table(rows: &[Row]) -> String {
    let body: Vec<[String; 9]> = rows.iter().map(cells).collect();
    let width = |i: usize| {
        body.iter().map(|c| c[i].chars().count()).chain([HEADERS[i].chars().count()]).max()
    };
    let w: Vec<usize> = (0..9).map(|i| width(i).unwrap_or(0)).collect();
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, cell) in c.iter().enumerate() {
            let pad = w[i] - cell.chars().count();
            if i < 2 || i == 7 {
                s += &format!("{cell}{}", " ".repeat(pad));
            } else {
                s += &format!("{}{cell}", " ".repeat(pad));
            }
            if i < 8 {
                s += " | ";
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(&HEADERS.map(String::from));
    out.push('\n');
    out += &w.iter().map(|&n| "-".repeat(n)).collect::<Vec<_>>().join("-|-");
    for c in &body {
        out.push('\n');
        out += &line(c);
    }
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A finite number as JSON, six significant digits.
fn json_num(v: f64) -> String {
    if !v.is_finite() {
        return "null".into();
    }
    let digits = 6 - (v.abs().log10().floor() as i32 + 1);
    let s = if digits > 0 { format!("{v:.*}", digits as usize) } else { format!("{v:.0}") };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').into() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// `report.json`: one object per row with a multiproc number, exactly the keys
/// case, unit, better, multiproc, python, floor, peers (`{NAME: figure, …}`, the peers measured
/// for the case, in its unit; `{}` when none).
pub(crate) fn json(rows: &[Row]) -> String {
    let objs: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let m = r.multiproc.value()?;
            let opt = |v: Option<f64>| v.map_or_else(|| "null".into(), json_num);
            let peers: Vec<String> = r
                .peers
                .iter()
                .filter_map(|(n, f)| Some(format!("{}: {}", json_str(n), json_num(f.value()?))))
                .collect();
            Some(format!(
                "  {{\"case\": {}, \"unit\": {}, \"better\": {}, \"multiproc\": {}, \"python\": {}, \
                 \"floor\": {}, \"peers\": {{{}}}}}",
                json_str(r.case.name),
                json_str(r.case.unit),
                json_str(r.case.better.as_str()),
                json_num(m),
                opt(r.python.value()),
                opt(r.floor),
                peers.join(", ")
            ))
        })
        .collect();
    if objs.is_empty() {
        "[]\n".into()
    } else {
        format!("[\n{}\n]\n", objs.join(",\n"))
    }
}

/// `report.md`: the table for the README, with date and machine.
pub(crate) fn markdown(rows: &[Row], m: &Machine, notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Measured {}.  ", m.line());
    let _ = writeln!(s, "{}; each figure from fresh processes, sides alternated.\n", m.how);
    let _ = writeln!(s, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|---|--:|");
    for r in rows {
        let c = cells(r);
        let _ = writeln!(s, "| `{}` | {} |", c[0], c[1..].join(" | "));
    }
    let _ = writeln!(
        s,
        "\n↓ lower is better, ↑ higher is better. A ratio below 1× on a ↓ row (above 1× on a ↑ \
         row) means multiproc is ahead. `floor.*` rows are the hardware limits measured in the \
         same run; the Rust peers are other crates doing the case's work, measured in the same \
         run by the same harness (see `benches/README.md`)."
    );
    for n in notes {
        let _ = writeln!(s, "\n{n}");
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `report.svg`: per case, how many times better than CPython (a bar from 1×) and what share of
/// the hardware floor it reaches (a diamond), on one log axis where right is better.
pub(crate) fn svg(rows: &[Row], m: &Machine) -> String {
    // Per row: times better than CPython, share of the floor, times better than the best peer.
    type Plotted<'a> = (&'a Row, Option<f64>, Option<f64>, Option<f64>);
    let plotted: Vec<Plotted<'_>> = rows
        .iter()
        .filter(|r| !r.case.is_floor())
        .map(|r| {
            let peer = r.advantage(r.vs_best_peer());
            (r, r.advantage(r.vs_python()), r.advantage(r.vs_floor()), peer)
        })
        .filter(|(_, a, b, c)| a.is_some() || b.is_some() || c.is_some())
        .collect();
    let vals: Vec<f64> = plotted.iter().flat_map(|(_, a, b, c)| [*a, *b, *c]).flatten().collect();
    let lo_v = vals.iter().copied().fold(1.0f64, f64::min).max(1e-6);
    let hi_v = vals.iter().copied().fold(1.0f64, f64::max).min(1e6);
    let mut lo = lo_v.log10().floor() as i32;
    let mut hi = hi_v.log10().ceil() as i32;
    if hi - lo < 2 {
        lo -= 1;
        hi += 1;
    }
    let (left, right, top, row_h) = (250.0, 870.0, 110.0, 36.0);
    let width = 960.0;
    let height = top + row_h * plotted.len().max(1) as f64 + 56.0;
    let x = |v: f64| {
        let t = (v.max(1e-6).log10() - lo as f64) / (hi - lo) as f64;
        left + t.clamp(0.0, 1.0) * (right - left)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" \
         font-size=\"13\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"20\" y=\"26\" font-size=\"17\" font-weight=\"bold\">multiproc against CPython, \
         the Rust peers and the hardware floor (log scale, right is better)</text>"
    );
    let _ = writeln!(s, "<text x=\"20\" y=\"46\" fill=\"#555\">{}</text>", esc(&m.line()));
    // legend
    let _ = writeln!(
        s,
        "<rect x=\"20\" y=\"58\" width=\"18\" height=\"10\" fill=\"#2e7d32\"/>\
         <rect x=\"40\" y=\"58\" width=\"18\" height=\"10\" fill=\"#c62828\"/>\
         <text x=\"64\" y=\"68\">bar: times faster than CPython (green ahead, red behind)</text>\
         <path d=\"M 470 57 l 6 6 l -6 6 l -6 -6 z\" fill=\"#ef6c00\"/>\
         <text x=\"484\" y=\"68\">diamond: share of the floor reached (1× = at the floor)</text>\
         <circle cx=\"20\" cy=\"82\" r=\"5\" fill=\"#1565c0\"/>\
         <text x=\"30\" y=\"86\">circle: times better than the best Rust peer of the case \
         (iceoryx2, ipc-channel, crossbeam-channel, procspawn, pthread-robust, threads)</text>"
    );
    let bottom = top + row_h * plotted.len().max(1) as f64;
    for d in lo..=hi {
        for (k, weight) in [(1.0, true), (2.0, false), (5.0, false)] {
            let v = k * 10f64.powi(d);
            if d == hi && k > 1.0 {
                continue;
            }
            let xv = x(v);
            let (stroke, w) = if d == 0 && k == 1.0 {
                ("#000", 1.5)
            } else if weight {
                ("#bbb", 1.0)
            } else {
                ("#e5e5e5", 1.0)
            };
            let _ = writeln!(
                s,
                "<line x1=\"{xv:.1}\" y1=\"{:.1}\" x2=\"{xv:.1}\" y2=\"{bottom:.1}\" \
                 stroke=\"{stroke}\" stroke-width=\"{w}\"/>",
                top - 8.0
            );
            if weight {
                let _ = writeln!(
                    s,
                    "<text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">{}×</text>",
                    bottom + 18.0,
                    if d >= 0 { format!("{v:.0}") } else { format!("{v:.*}", (-d) as usize) }
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">← multiproc worse · \
         1× = parity · multiproc better →</text>",
        (left + right) / 2.0,
        bottom + 40.0
    );
    for (i, (r, adv_py, adv_floor, adv_peer)) in plotted.iter().enumerate() {
        let yc = top + row_h * i as f64 + row_h / 2.0;
        if i % 2 == 1 {
            let _ = writeln!(
                s,
                "<rect x=\"10\" y=\"{:.1}\" width=\"{:.1}\" height=\"{row_h}\" fill=\"#f6f6f6\"/>",
                yc - row_h / 2.0,
                width - 20.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} <tspan fill=\"#777\">({})\
             </tspan></text>",
            left - 10.0,
            yc + 4.5,
            esc(r.case.name),
            esc(&unit_cell(r.case))
        );
        if let Some(a) = adv_py {
            let (x0, x1) = (x(1.0), x(*a));
            let color = if *a >= 1.0 { "#2e7d32" } else { "#c62828" };
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" fill=\"{color}\"/>",
                x0.min(x1),
                yc - 6.0,
                (x1 - x0).abs().max(1.0)
            );
            let (tx, anchor) = if *a >= 1.0 { (x1 + 5.0, "start") } else { (x1 - 5.0, "end") };
            let _ = writeln!(
                s,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"{color}\">{}×\
                 </text>",
                yc + 4.5,
                fmt_num(*a)
            );
        }
        if let Some(f) = adv_floor {
            let xf = x(*f);
            let _ = writeln!(
                s,
                "<path d=\"M {xf:.1} {:.1} l 7 7 l -7 7 l -7 -7 z\" fill=\"#ef6c00\" \
                 stroke=\"white\"/><text x=\"{xf:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
                 font-size=\"10\" fill=\"#ef6c00\">{}</text>",
                yc - 7.0,
                yc - 9.0,
                fmt_num(*f)
            );
        }
        if let (Some(a), Some((name, _))) = (adv_peer, r.best_peer()) {
            let xp = x(*a);
            let _ = writeln!(
                s,
                "<circle cx=\"{xp:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"#1565c0\" stroke=\"white\">\
                 <title>{}× vs {}</title></circle><text x=\"{xp:.1}\" y=\"{:.1}\" \
                 text-anchor=\"middle\" font-size=\"10\" fill=\"#1565c0\">{} {}</text>",
                yc + 6.0,
                fmt_num(*a),
                esc(name),
                yc + 16.0,
                fmt_num(*a),
                esc(name)
            );
        }
    }
    if plotted.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{:.1}\">no case has both sides measured yet</text>",
            top + 18.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_767_225_600 + 3_723), "2026-01-01 01:02 UTC");
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(12_345_678.0), "12.3M");
        assert_eq!(fmt_num(181_234.0), "181k");
        assert_eq!(fmt_num(9123.4), "9123");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(0.3521), "0.352");
        assert_eq!(fmt_num(0.001_853), "0.00185");
        assert_eq!(json_num(0.352144987), "0.352145");
        assert_eq!(json_num(18_234_567.8), "18234568");
        assert_eq!(json_num(2.0), "2");
        assert_eq!(json_num(f64::NAN), "null");
    }

    fn row(case: &'static Case, m: Figure, p: Figure, floor: Option<f64>) -> Row {
        Row { case, multiproc: m, python: p, floor, peers: Vec::new() }
    }

    #[test]
    fn json_has_exactly_the_keys_and_skips_absent_rows() {
        let shm = crate::cases::find("shm.write_64mib").unwrap();
        let pipe = crate::cases::find("pipe.rtt_blocking").unwrap();
        let mut with_peers = row(shm, Figure::Value(5000.0), Figure::Value(1000.0), Some(10_000.0));
        with_peers.peers = vec![
            ("iceoryx2", Figure::Value(10_000.0)),
            ("threads", Figure::Failed("boom".into())),
            ("ipc-channel", Figure::Value(2500.0)),
        ];
        let rows = [
            with_peers,
            row(pipe, Figure::Absent, Figure::Value(40.0), Some(12.0)),
            row(shm, Figure::Value(1.5), Figure::Unavailable, None),
        ];
        assert_eq!(rows[0].best_peer(), Some(("iceoryx2", 10_000.0)));
        assert_eq!(rows[0].vs_best_peer(), Some(0.5));
        let j = json(&rows);
        assert_eq!(
            j,
            "[\n  {\"case\": \"shm.write_64mib\", \"unit\": \"MB/s\", \"better\": \"higher\", \
             \"multiproc\": 5000, \"python\": 1000, \"floor\": 10000, \"peers\": {\"iceoryx2\": \
             10000, \"ipc-channel\": 2500}},\n  {\"case\": \"shm.write_64mib\", \"unit\": \"MB/s\", \
             \"better\": \"higher\", \"multiproc\": 1.5, \"python\": null, \"floor\": null, \
             \"peers\": {}}\n]\n"
        );
        let t = table(&rows);
        assert!(t.contains("not yet") && t.contains("n/a") && t.contains("5.00×"), "{t}");
        assert!(t.contains("iceoryx2 10.0k (0.500×) · threads FAILED · ipc-channel 2500 (2.00×)"));
        let m = Machine::detect(None, Scale::Smoke, 1);
        let svg = svg(&rows, &m);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("shm.write_64mib") && svg.contains("5.00×"));
        let md = markdown(&rows, &m, &["a note".into()]);
        assert!(
            md.contains("| `pipe.rtt_blocking` | µs ↓ | not yet | 40.0 | 12.0 | — | — | — | — |")
        );
        assert!(svg.contains("0.500 iceoryx2"), "the best peer's circle");
    }
}
